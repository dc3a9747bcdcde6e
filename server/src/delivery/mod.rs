pub mod mls;

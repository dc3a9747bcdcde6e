//! The `peerbridge` binary: parses the command line and runs it.

use clap::Parser;
use peerbridge_server::cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::runtime().and_then(|rt| rt.block_on(cli::run(args))) {
        Ok(code) => code,
        Err(e) => {
            cli::report(&e);
            1
        }
    };
    std::process::exit(code);
}

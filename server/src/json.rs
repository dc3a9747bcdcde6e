//! The JSON body extractor every handler uses. It reads the body with actix's `Json`
//! (content type, size limit, body deadline and their problem codes stay as configured),
//! then accepts what JSON Schema accepts and serde alone would not: a number with a zero
//! fraction (`35.0`, `1e2`) is an integer. Type errors name the field (`device.label`) and
//! never repeat the value.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use peerbridge_openapi::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::{Number, Value};

use crate::error::ApiError;

/// A deserialized JSON request body (drop-in for `actix_web::web::Json`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let raw = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let mut value = raw.await?.into_inner();
            integral_numbers(&mut value);
            from_value(value).map(Json).map_err(Into::into)
        })
    }
}

/// Deserializes a normalised body; a failure names the field path, not the value.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // Field names are ours (or the client's own typo); values are never repeated.
        let what = if inner.starts_with("unknown field") || inner.starts_with("missing field") {
            inner
                .split(", expected")
                .next()
                .unwrap_or(&inner)
                .to_owned()
        } else {
            "a value has the wrong type or form".to_owned()
        };
        let mut err = ApiError::new(ErrorCode::MalformedBody);
        if path != "." {
            err.field = Some(path.clone());
            err = err.detail(format!("{path}: {what}"));
        } else {
            err = err.detail(what);
        }
        err
    })
}

/// Rewrites every number with a zero fraction that fits an `i64`/`u64` as that integer, so
/// `35.0` reaches an integer field as 35. Other numbers are left as they are.
pub fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
            {
                // 2^63 and 2^64 are exact in f64; strict bounds keep the casts exact.
                if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                    *n = Number::from(f as i64);
                } else if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *n = Number::from(f as u64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Body {
        hours: u32,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        label: String,
        ratio: Option<f64>,
    }

    fn parse(s: &str) -> Result<Body, ApiError> {
        let mut v: Value = serde_json::from_str(s).expect("json");
        integral_numbers(&mut v);
        from_value(v)
    }

    #[test]
    fn a_whole_number_written_as_a_float_is_an_integer() {
        assert_eq!(parse(r#"{"hours":35.0}"#).expect("35.0").hours, 35);
        assert_eq!(parse(r#"{"hours":1e2}"#).expect("1e2").hours, 100);
        assert_eq!(parse(r#"{"hours":35}"#).expect("35").hours, 35);
    }

    #[test]
    fn a_fraction_or_a_negative_number_is_still_refused_without_echoing_it() {
        for body in [
            r#"{"hours":35.5}"#,
            r#"{"hours":-3.0}"#,
            r#"{"hours":1e30}"#,
        ] {
            let e = parse(body).expect_err(body);
            assert_eq!(e.code, ErrorCode::MalformedBody);
            assert_eq!(e.field.as_deref(), Some("hours"));
            let d = e.detail.unwrap_or_default();
            assert!(
                !d.contains("35.5") && !d.contains("-3") && !d.contains("1e30"),
                "{d}"
            );
        }
    }

    #[test]
    fn non_integer_fields_keep_their_fractions_and_errors_name_the_nested_field() {
        let b = parse(r#"{"hours":1,"inner":{"label":"x","ratio":2.5}}"#).expect("ok");
        let inner = b.inner.expect("inner");
        assert_eq!((inner.label.as_str(), inner.ratio), ("x", Some(2.5)));
        let e = parse(r#"{"hours":1,"inner":{"label":"secret-value-7"}}"#).map(|_| ());
        assert!(e.is_ok());
        let e = parse(r#"{"hours":1,"inner":{"label":42}}"#).expect_err("type");
        assert_eq!(e.field.as_deref(), Some("inner.label"));
        let e = parse(r#"{"hours":1,"bogus":1}"#).expect_err("unknown");
        assert!(
            e.detail
                .unwrap_or_default()
                .contains("unknown field `bogus`")
        );
    }
}

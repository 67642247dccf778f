use wasm_bindgen::prelude::*;

/// A newtype that represents Serde errors as JavaScript exceptions.
#[derive(Debug)]
pub struct Error(JsValue);

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = String)]
    fn to_string(value: &JsValue) -> String;

    #[wasm_bindgen(js_namespace = JSON, js_name = stringify)]
    fn quote(value: &str) -> String;
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // The message alone: `String()` of an `Error` starts it with `Error: `.
        match self.0.dyn_ref::<js_sys::Error>() {
            Some(error) => String::from(error.message()).fmt(f),
            None => to_string(&self.0).fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Creates a JavaScript `Error` with a given message.
    pub fn new<T: std::fmt::Display>(msg: T) -> Self {
        Error(JsError::new(&msg.to_string()).into())
    }
}

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::new(msg)
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::new(msg)
    }

    // serde's own messages, but with `Unexpected` below: serde's Display of
    // `Unexpected::Float` would link Rust's float formatting (about 22 KB) into the module.
    fn invalid_type(unexp: serde::de::Unexpected, exp: &dyn serde::de::Expected) -> Self {
        Error::new(format_args!("invalid type: {}, expected {}", Unexpected(unexp), exp))
    }

    fn invalid_value(unexp: serde::de::Unexpected, exp: &dyn serde::de::Expected) -> Self {
        Error::new(format_args!("invalid value: {}, expected {}", Unexpected(unexp), exp))
    }
}

/// serde's Display of `Unexpected`, with a float written by JavaScript's `String()`.
struct Unexpected<'a>(serde::de::Unexpected<'a>);

impl std::fmt::Display for Unexpected<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        use serde::de::Unexpected::*;
        match self.0 {
            Bool(b) => write!(f, "boolean `{}`", b),
            Unsigned(i) => write!(f, "integer `{}`", i),
            Signed(i) => write!(f, "integer `{}`", i),
            Float(v) => {
                // Like serde, `1.0` rather than `1`. (JavaScript writes an exponent for very
                // large and very small numbers, and `Infinity` for serde's `inf`.)
                let text = to_string(&JsValue::from_f64(v));
                let point = if v.is_finite() && !text.contains(['.', 'e']) { ".0" } else { "" };
                write!(f, "floating point `{}{}`", text, point)
            }
            Char(c) => write!(f, "character `{}`", c),
            // Quoted by JavaScript's `JSON.stringify`, not Rust's `{:?}`: the same but for
            // control and other unprintable characters (`\u001b`, not `\u{1b}`), and without
            // `str`'s `Debug`, which links Unicode tables and the panic message of string
            // slicing (about 7 KB of the wasm, 4.5 KB gzipped).
            Str(s) => write!(f, "string {}", quote(s)),
            Bytes(_) => f.write_str("byte array"),
            Unit => f.write_str("unit value"),
            Option => f.write_str("Option value"),
            NewtypeStruct => f.write_str("newtype struct"),
            Seq => f.write_str("sequence"),
            Map => f.write_str("map"),
            Enum => f.write_str("enum"),
            UnitVariant => f.write_str("unit variant"),
            NewtypeVariant => f.write_str("newtype variant"),
            TupleVariant => f.write_str("tuple variant"),
            StructVariant => f.write_str("struct variant"),
            Other(other) => f.write_str(other),
        }
    }
}

/// This conversion is needed for `?` to just work when using wasm-bindgen
/// imports that return JavaScript exceptions as `Result<T, JsValue>`.
impl From<JsValue> for Error {
    fn from(error: JsValue) -> Error {
        Error(error)
    }
}

// This conversion is needed for `?` to just work in wasm-bindgen exports
// that return `Result<T, JsValue>` to throw JavaScript exceptions.
impl From<Error> for JsValue {
    fn from(error: Error) -> JsValue {
        error.0
    }
}

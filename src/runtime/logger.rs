//! The engine's `log` records on the console, with levels and structured fields.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Write;

/// Writes each record as `[chat-sync] message key=value …` to the console method of its level.
struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = format!("[chat-sync] {}", record.args());
        let mut visitor = Fields(&mut line);
        let _ = record.key_values().visit(&mut visitor);
        let text = wasm_bindgen::JsValue::from(line);
        match record.level() {
            Level::Error => web_sys::console::error_1(&text),
            Level::Warn => web_sys::console::warn_1(&text),
            Level::Info => web_sys::console::info_1(&text),
            Level::Debug | Level::Trace => web_sys::console::debug_1(&text),
        }
    }

    fn flush(&self) {}
}

/// Appends ` key=value` for each structured field.
struct Fields<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, " {key}=");
        value.visit(FieldValue(self.0))
    }
}

/// Writes a field's value, a string, an integer or a bool, without `Value`'s Display: that one
/// also writes floats, and so links Rust's float formatting (about 22 KB) into the module. Other
/// values are passed as strings (`error = error.to_string().as_str()`, not `error:% = error`);
/// any other kind of value is written `?`.
struct FieldValue<'a>(&'a mut String);

impl<'v> log::kv::VisitValue<'v> for FieldValue<'_> {
    fn visit_any(&mut self, _value: log::kv::Value<'_>) -> Result<(), log::kv::Error> {
        self.0.push('?');
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, "{value}");
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, "{value}");
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, "{value}");
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        self.0.push_str(value);
        Ok(())
    }
}

/// Sets the console log level from the `logLevel` option: `debug`, `info`, `warn`, `error`
/// or `off`. Returns false for anything else (the level is then left as it was).
pub fn set_log_level(level: &str) -> bool {
    let filter = match level {
        "debug" => LevelFilter::Debug,
        "info" => LevelFilter::Info,
        "warn" => LevelFilter::Warn,
        "error" => LevelFilter::Error,
        "off" => LevelFilter::Off,
        _ => return false,
    };
    // Installing twice (several managers) fails harmlessly: the same logger stays.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(filter);
    true
}

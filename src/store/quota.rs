//! `navigator.storage`: how much is used, and asking the browser to keep our data.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `navigator.storage.estimate()`: bytes used and available to this origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageEstimate {
    /// Bytes used.
    pub usage: f64,
    /// Bytes the origin may use.
    pub quota: f64,
}

/// Calls `navigator.storage.<method>()` and awaits its promise; `None` where there is none.
async fn storage_call(method: &str) -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let storage = Reflect::get(&navigator, &"storage".into()).ok()?;
    let function: Function = Reflect::get(&storage, &method.into())
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: Promise = function.call0(&storage).ok()?.dyn_into().ok()?;
    JsFuture::from(promise).await.ok()
}

/// The storage estimate, where the browser offers one.
pub async fn storage_estimate() -> Option<StorageEstimate> {
    let estimate = storage_call("estimate").await?;
    let number = |key: &str| Reflect::get(&estimate, &key.into()).ok()?.as_f64();
    Some(StorageEstimate {
        usage: number("usage")?,
        quota: number("quota")?,
    })
}

/// Asks the browser to keep this origin's data under storage pressure
/// (`navigator.storage.persist()`, pages only). Whether it agreed.
pub async fn request_persistence() -> bool {
    storage_call("persist")
        .await
        .and_then(|granted| granted.as_bool())
        .unwrap_or(false)
}

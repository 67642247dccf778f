//! Awaiting a raw IndexedDB request (for the calls the `idb` crate lacks, and for opens that
//! must outlive an abandoned wait).

use super::errors::{classify_exception, Failure};
use js_sys::Function;
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbRequest;

/// The result of a raw IndexedDB request.
pub(crate) async fn request_result(request: &IdbRequest) -> Result<JsValue, Failure> {
    let promise = js_sys::Promise::new(&mut |resolve: Function, reject: Function| {
        let on_success = Closure::once_into_js(move |event: web_sys::Event| {
            let result = event
                .target()
                .and_then(|target| target.dyn_into::<IdbRequest>().ok())
                .and_then(|request| request.result().ok())
                .unwrap_or(JsValue::UNDEFINED);
            let _ = resolve.call1(&JsValue::NULL, &result);
        });
        let on_error = Closure::once_into_js(move |event: web_sys::Event| {
            let error = event
                .target()
                .and_then(|target| target.dyn_into::<IdbRequest>().ok())
                .and_then(|request| request.error().ok().flatten())
                .map(JsValue::from)
                .unwrap_or(JsValue::UNDEFINED);
            let _ = reject.call1(&JsValue::NULL, &error);
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise)
        .await
        .map_err(|error| match error.dyn_ref::<web_sys::DomException>() {
            Some(exception) => classify_exception(exception),
            None => Failure::Other("an IndexedDB request failed".into()),
        })
}

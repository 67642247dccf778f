//! Leadership among tabs: one tab at a time holds a Web Lock and syncs; the others wait for it,
//! or take it over from a tab that stopped answering (`steal`).
//!
//! Where the Web Locks API is missing (Safari before 15.4), every tab leads: sends stay exactly
//! once (the server deduplicates by client message id), only the work is repeated.

use futures_channel::oneshot;
use js_sys::{Function, Promise, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

type Granted = Closure<dyn FnMut(JsValue) -> Promise>;

/// What runs once, when this tab becomes the leader.
type OnAcquired = Rc<RefCell<Option<Box<dyn FnOnce()>>>>;

/// What runs when another tab took the lock over from this one.
type OnLost = Rc<dyn Fn()>;

/// How to ask for the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Take it if free, or wait in line for it.
    Queue,
    /// Take it now, from the tab that holds it (which hears of it through its `on_lost`).
    TakeOver,
}

/// Holds (or waits for) the lock; dropping it releases the lock or withdraws the request.
pub(crate) struct Leadership {
    release: Rc<RefCell<Option<Function>>>,
    abort: Option<web_sys::AbortController>,
    _callbacks: Vec<Granted>,
}

impl Leadership {
    /// Takes the lock `name` if it is free or `ask` is [`Ask::TakeOver`] (then `on_acquired` has
    /// run when this returns), or queues for it (`on_acquired` runs when the leading tab lets
    /// go). `on_lost` runs if another tab takes the lock over later. Where Web Locks are missing,
    /// this tab leads at once.
    pub(crate) async fn acquire(
        name: &str,
        ask: Ask,
        on_acquired: impl FnOnce() + 'static,
        on_lost: impl Fn() + 'static,
    ) -> Self {
        let release: Rc<RefCell<Option<Function>>> = Rc::new(RefCell::new(None));
        let on_acquired: OnAcquired = Rc::new(RefCell::new(Some(Box::new(on_acquired))));
        let on_lost: OnLost = Rc::new(on_lost);
        let Some((locks, request)) = locks() else {
            log::info!("no Web Locks here: this tab syncs on its own");
            return Self::alone(&on_acquired, release, Vec::new());
        };
        let mut callbacks = Vec::new();
        // First: is the lock free right now?
        let (decided, answer) = oneshot::channel::<Decision>();
        let decided = Rc::new(RefCell::new(Some(decided)));
        let decide = move |decision| {
            if let Some(decided) = decided.borrow_mut().take() {
                let _ = decided.send(decision);
            }
        };
        let on_granted = decide.clone();
        let now = granted(&release, &on_acquired, move |got| {
            on_granted(if got { Decision::Got } else { Decision::Taken })
        });
        let options = js_sys::Object::new();
        let option = match ask {
            Ask::Queue => "ifAvailable",
            Ask::TakeOver => "steal",
        };
        let _ = Reflect::set(&options, &option.into(), &JsValue::TRUE);
        let refused = move || decide(Decision::Refused);
        call(
            &locks, &request, name, &options, &now, &release, &on_lost, refused,
        );
        callbacks.push(now);
        match answer.await.unwrap_or(Decision::Refused) {
            Decision::Got => {
                return Self {
                    release,
                    abort: None,
                    _callbacks: callbacks,
                }
            }
            Decision::Refused => {
                // (A sandboxed frame or a `file:` page: an opaque origin has no locks.)
                log::warn!("Web Locks refused here: this tab syncs on its own");
                return Self::alone(&on_acquired, release, callbacks);
            }
            Decision::Taken => {}
        }
        // Taken: wait in line, withdrawable on drop.
        let abort = web_sys::AbortController::new().ok();
        let options = js_sys::Object::new();
        if let Some(abort) = &abort {
            let _ = Reflect::set(&options, &"signal".into(), &abort.signal());
        }
        let later = granted(&release, &on_acquired, |_| {});
        call(
            &locks,
            &request,
            name,
            &options,
            &later,
            &release,
            &on_lost,
            || {},
        );
        callbacks.push(later);
        Self {
            release,
            abort,
            _callbacks: callbacks,
        }
    }
}

impl Leadership {
    /// Leads without a lock (none here): `on_acquired` runs now.
    fn alone(
        on_acquired: &OnAcquired,
        release: Rc<RefCell<Option<Function>>>,
        callbacks: Vec<Granted>,
    ) -> Self {
        if let Some(on_acquired) = on_acquired.borrow_mut().take() {
            on_acquired();
        }
        Self {
            release,
            abort: None,
            _callbacks: callbacks,
        }
    }
}

/// What the first lock request found.
#[derive(Clone, Copy)]
enum Decision {
    /// The lock: this tab leads.
    Got,
    /// Another tab holds it.
    Taken,
    /// The browser refused the request: no locks here.
    Refused,
}

/// The lock callback: with a lock, hold it (until `release`) and run `on_acquired`; without one
/// (`ifAvailable` and taken), let go at once. `decided` hears which.
fn granted(
    release: &Rc<RefCell<Option<Function>>>,
    on_acquired: &OnAcquired,
    decided: impl Fn(bool) + 'static,
) -> Granted {
    let release = release.clone();
    let on_acquired = on_acquired.clone();
    Closure::new(move |lock: JsValue| {
        if lock.is_null() || lock.is_undefined() {
            decided(false);
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let release = release.clone();
        let held = Promise::new(&mut |resolve, _reject| {
            *release.borrow_mut() = Some(resolve);
        });
        if let Some(on_acquired) = on_acquired.borrow_mut().take() {
            on_acquired();
        }
        decided(true);
        held
    })
}

/// `locks.request(name, options, callback)`. Its promise rejects when the request is withdrawn
/// (expected), when another tab takes the held lock over (then `on_lost` runs), or when the
/// browser refuses it before granting anything (then `refused` runs).
#[allow(clippy::too_many_arguments)]
fn call(
    locks: &JsValue,
    request: &Function,
    name: &str,
    options: &js_sys::Object,
    callback: &Granted,
    release: &Rc<RefCell<Option<Function>>>,
    on_lost: &OnLost,
    refused: impl FnOnce() + 'static,
) {
    let promise = request.call3(
        locks,
        &name.into(),
        options,
        callback.as_ref().unchecked_ref(),
    );
    let Ok(promise) = promise else {
        refused();
        return;
    };
    let release = release.clone();
    let on_lost = on_lost.clone();
    wasm_bindgen_futures::spawn_local(async move {
        if JsFuture::from(promise.unchecked_into::<Promise>())
            .await
            .is_ok()
        {
            return;
        }
        // Held and not let go by this tab (which takes `release` first): taken over.
        if release.borrow_mut().take().is_some() {
            on_lost();
        } else {
            refused(); // (Nothing once the request was decided.)
        }
    });
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(release) = self.release.borrow_mut().take() {
            let _ = release.call0(&JsValue::NULL);
        } else if let Some(abort) = &self.abort {
            abort.abort();
        }
    }
}

/// `navigator.locks` and its `request` method, where they exist.
fn locks() -> Option<(JsValue, Function)> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    if locks.is_undefined() || locks.is_null() {
        return None;
    }
    let request = Reflect::get(&locks, &"request".into())
        .ok()?
        .dyn_into()
        .ok()?;
    Some((locks, request))
}

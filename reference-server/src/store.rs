//! Where a dialect that keeps data across restarts keeps it (`chat`'s offline messages and
//! history), handed to its `serve` function without changing that function's signature.
//!
//! [`crate::start`] runs the dialect's `serve` inside [`scoped`]; `serve` reads the location
//! with [`location`] and, if it cannot open it, says so with [`fail`], which makes `start`
//! return that error instead of serving without the store. A thread-local keeps two servers
//! started at once (tests) apart: `serve` runs synchronously on the thread that calls `start`.

use std::cell::RefCell;

/// The store of a server that names none: in memory, gone with the process.
pub const IN_MEMORY: &str = ":memory:";

/// The store file `roomrig serve` uses when `--chat-db` is not given.
pub const DEFAULT_FILE: &str = "roomrig-chat.sqlite3";

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

struct Scope {
    location: String,
    failure: Option<String>,
}

/// Runs `serve` with `location` as the store; `Err` is what `serve` reported with [`fail`].
pub fn scoped(location: &str, serve: impl FnOnce()) -> Result<(), String> {
    let outer = SCOPE.with(|s| {
        s.borrow_mut().replace(Scope {
            location: location.to_string(),
            failure: None,
        })
    });
    serve();
    let inner = SCOPE.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    match inner.and_then(|scope| scope.failure) {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// The store location of the server being set up ([`IN_MEMORY`] outside [`scoped`]).
pub fn location() -> String {
    SCOPE.with(|s| {
        s.borrow()
            .as_ref()
            .map_or_else(|| IN_MEMORY.to_string(), |scope| scope.location.clone())
    })
}

/// The dialect could not open its store: `start` fails with `why`.
pub fn fail(why: String) {
    SCOPE.with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut() {
            scope.failure.get_or_insert(why);
        } else {
            tracing::error!("{why}");
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scope_names_the_location_and_carries_a_failure_back() {
        assert_eq!(super::location(), super::IN_MEMORY);
        let seen = std::cell::Cell::new(String::new());
        super::scoped("/tmp/x.db", || seen.set(super::location())).unwrap();
        assert_eq!(seen.take(), "/tmp/x.db");
        let err = super::scoped("/nope", || super::fail("cannot open /nope".into()));
        assert_eq!(err.unwrap_err(), "cannot open /nope");
        assert_eq!(super::location(), super::IN_MEMORY);
    }
}

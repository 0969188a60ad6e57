//! Which request an error answers. Errors carry no request id in these protocols, so an error
//! is paired by what it says and what could have caused it, never by queue position alone:
//! - on a channel shared by every request (`lobby`'s `err`), by its text: the dialect knows
//!   which requests can produce each text, and a text it does not know may answer any request;
//! - on the request's own event (`dorm`), by that event.
//!
//! One connection's requests are answered in order, so among the requests that could have
//! caused an error, the oldest still unanswered is the one it answers. Where that still leaves
//! more than one possibility, the answer says so (the evidence must not guess).

/// A request of one client that is still waiting for its answer, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unanswered {
    pub request: &'static str,
    /// The scenario expects the server to refuse it.
    pub expects_error: bool,
}

/// How the errors of a dialect name their request.
#[derive(Debug, Clone, Copy)]
pub enum ErrorSource<'a> {
    /// On the request's own event: this event.
    OwnEvent(&'a str),
    /// On one channel: the requests the text belongs to (`None`: an unknown text).
    Channel(Option<&'a [&'a str]>),
}

/// What an error turned out to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAnswer {
    /// The request at this index of the unanswered ones, which expected an error.
    /// `ambiguous`: requests of other events could have caused it too.
    Expected { index: usize, ambiguous: bool },
    /// An error the client was told to tolerate (its request raced its own membership).
    Tolerated,
    /// The valid request at this index was refused.
    Refused { index: usize },
    /// A valid request of the error's own event (or, on a channel, some request) was refused.
    Unexpected,
    /// On another event than its request's: the only request that could have caused it
    /// (`index`: its place among the unanswered ones, if it is one of them).
    WrongEvent {
        request: &'static str,
        index: Option<usize>,
    },
    /// On another event than its request's, and several requests of different events could
    /// have caused it: which one is not known.
    AmbiguousWrongEvent { candidates: Vec<&'static str> },
    /// On an event no request used, while no request was waiting for anything.
    NoCause,
}

/// Decides what an error answers.
///
/// `unanswered`: the client's requests still waiting for a reply or an error, oldest first.
/// `recent`: the events of the requests it sent lately that got no answer it could see (a
/// broadcast request stays here for its deadlines), oldest first.
/// `tolerated`: the client may get one error of this kind without cause.
pub fn attribute_error(
    source: ErrorSource<'_>,
    unanswered: &[Unanswered],
    recent: &[&'static str],
    tolerated: bool,
) -> ErrorAnswer {
    let could_cause = |request: &str| match source {
        ErrorSource::OwnEvent(event) => request == event,
        ErrorSource::Channel(None) => true,
        ErrorSource::Channel(Some(requests)) => requests.contains(&request),
    };
    let mut expecting = unanswered
        .iter()
        .enumerate()
        .filter(|(_, u)| u.expects_error && could_cause(u.request));
    if let Some((index, first)) = expecting.next() {
        let ambiguous = expecting.any(|(_, u)| u.request != first.request);
        return ErrorAnswer::Expected { index, ambiguous };
    }
    if tolerated {
        return ErrorAnswer::Tolerated;
    }
    if let Some(index) = unanswered
        .iter()
        .position(|u| !u.expects_error && could_cause(u.request))
    {
        return ErrorAnswer::Refused { index };
    }
    match source {
        ErrorSource::Channel(_) => ErrorAnswer::Unexpected,
        ErrorSource::OwnEvent(event) if recent.contains(&event) => ErrorAnswer::Unexpected,
        ErrorSource::OwnEvent(_) => {
            let mut candidates: Vec<&'static str> = Vec::new();
            for &r in recent.iter().chain(unanswered.iter().map(|u| &u.request)) {
                if !candidates.contains(&r) {
                    candidates.push(r);
                }
            }
            match candidates.as_slice() {
                [] => ErrorAnswer::NoCause,
                [request] => ErrorAnswer::WrongEvent {
                    request,
                    index: unanswered
                        .iter()
                        .position(|u| u.request == *request && u.expects_error),
                },
                _ => ErrorAnswer::AmbiguousWrongEvent { candidates },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn expects(request: &'static str) -> Unanswered {
        Unanswered {
            request,
            expects_error: true,
        }
    }
    const fn waits(request: &'static str) -> Unanswered {
        Unanswered {
            request,
            expects_error: false,
        }
    }

    const LOBBY_ROOM: &[&str] = &["joinRoom"];
    const LOBBY_NOT_IN: &[&str] = &["leaveRoom", "roomMessage"];

    /// The false alarm of the issue: an earlier request was answered normally (so it is no
    /// longer unanswered), and the next error belongs to the request its text names, not to
    /// the oldest one waiting.
    #[test]
    fn channel_error_pairs_by_text_not_queue_position() {
        let unanswered = [expects("privateMessage"), expects("leaveRoom")];
        let got = attribute_error(
            ErrorSource::Channel(Some(LOBBY_NOT_IN)),
            &unanswered,
            &[],
            false,
        );
        assert_eq!(
            got,
            ErrorAnswer::Expected {
                index: 1,
                ambiguous: false
            }
        );
        // Near miss: with no text to go by, the oldest is taken, and said to be a guess.
        let got = attribute_error(ErrorSource::Channel(None), &unanswered, &[], false);
        assert_eq!(
            got,
            ErrorAnswer::Expected {
                index: 0,
                ambiguous: true
            }
        );
        // Requests of one event: the oldest, and no ambiguity.
        let same = [expects("joinRoom"), expects("joinRoom")];
        let got = attribute_error(ErrorSource::Channel(Some(LOBBY_ROOM)), &same, &[], false);
        assert_eq!(
            got,
            ErrorAnswer::Expected {
                index: 0,
                ambiguous: false
            }
        );
    }

    #[test]
    fn a_refused_valid_request_is_named() {
        let unanswered = [waits("login"), waits("joinRoom")];
        let got = attribute_error(
            ErrorSource::Channel(Some(LOBBY_ROOM)),
            &unanswered,
            &[],
            false,
        );
        assert_eq!(got, ErrorAnswer::Refused { index: 1 });
        // A tolerated error (the request raced its membership) is not a refusal.
        let got = attribute_error(
            ErrorSource::Channel(Some(LOBBY_ROOM)),
            &unanswered,
            &[],
            true,
        );
        assert_eq!(got, ErrorAnswer::Tolerated);
        // A text that names a request nobody sent: unexpected, charged to nobody in particular.
        let got = attribute_error(
            ErrorSource::Channel(Some(LOBBY_NOT_IN)),
            &unanswered,
            &[],
            false,
        );
        assert_eq!(got, ErrorAnswer::Unexpected);
    }

    #[test]
    fn own_event_errors_name_their_request() {
        let unanswered = [expects("join_room"), expects("action")];
        let got = attribute_error(ErrorSource::OwnEvent("action"), &unanswered, &[], false);
        assert_eq!(
            got,
            ErrorAnswer::Expected {
                index: 1,
                ambiguous: false
            }
        );
        // An error on `message` after valid messages: a valid message was refused.
        let got = attribute_error(ErrorSource::OwnEvent("message"), &[], &["message"], false);
        assert_eq!(got, ErrorAnswer::Unexpected);
    }

    /// The dorm false alarm of the issue: an error on a foreign event is not charged to an
    /// earlier `join_room` when other requests could have caused it.
    #[test]
    fn foreign_event_errors_are_charged_only_when_one_request_can_explain_them() {
        let unanswered = [expects("join_room")];
        let got = attribute_error(
            ErrorSource::OwnEvent("error"),
            &unanswered,
            &["join_room", "message"],
            false,
        );
        assert_eq!(
            got,
            ErrorAnswer::AmbiguousWrongEvent {
                candidates: vec!["join_room", "message"]
            }
        );
        // Near miss: the actions were the only requests: their error arrived on `message`.
        let unanswered = [expects("action"), expects("action")];
        let got = attribute_error(
            ErrorSource::OwnEvent("message"),
            &unanswered,
            &["action", "action"],
            false,
        );
        assert_eq!(
            got,
            ErrorAnswer::WrongEvent {
                request: "action",
                index: Some(0)
            }
        );
        let got = attribute_error(ErrorSource::OwnEvent("error"), &[], &[], false);
        assert_eq!(got, ErrorAnswer::NoCause);
    }
}

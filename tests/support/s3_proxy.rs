//! [`S3Proxy`]: a fault-injecting HTTP/1.1 front for the stack's s3s-fs server, so a test can
//! make the object store fail exactly when and how it wants (see tests/README.md).
//!
//! Receives: S3 requests (path-style addressing) from the connector or a test's client on its
//! own loopback port, and the test's commands (faults, store modes, holds, waits).
//! Sends: each request upstream to s3s-fs byte for byte, and s3s-fs's answer back byte for byte
//! (SigV4 signs the Host header and most others, and s3s-fs verifies the signature, so nothing
//! is ever rewritten); or, when a fault or a store mode says so, an answer of its own.
//! Owns: an accept thread, one thread per client connection (each with its own keep-alive
//! connection upstream), the fault rules, the holds, and the log of every request.
//!
//! Requests and responses are read whole before they are passed on (bodies are small in tests,
//! and a whole request is what lets the proxy cut a body in the middle or hold a response that
//! the store has already acted on). Request bodies may be framed by `Content-Length` or chunked.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Stack;

impl Stack {
    /// Starts an [`S3Proxy`] in front of this stack's s3s-fs (it follows a restarted s3s-fs,
    /// which keeps its port). Point the connector at [`S3Proxy::endpoint`]
    /// (`set_sink_endpoint`) or a test client at it (`Stack::s3_at`).
    pub fn s3_proxy(&self) -> S3Proxy {
        S3Proxy::start(self.s3_port, self.s3_root())
    }
}

/// The S3 operation a request is, from its method, path and query (path-style addressing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    PutObject,
    UploadPart,
    CreateMultipartUpload,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    GetObject,
    HeadObject,
    HeadBucket,
    /// ListObjects and ListObjectsV2.
    ListObjects,
    DeleteObject,
    /// Answered by s3s-fs with 501 `NotImplemented`, unless the proxy emulates it
    /// ([`S3Proxy::emulate_list_uploads`]).
    ListMultipartUploads,
    /// Everything else (CopyObject, DeleteObjects, ListParts, bucket sub-resources, ...).
    Other,
}

/// Which operations a fault applies to.
#[derive(Clone, Debug)]
pub enum Target {
    All,
    Only(Vec<Operation>),
}

impl Target {
    fn includes(&self, operation: Operation) -> bool {
        match self {
            Target::All => true,
            Target::Only(operations) => operations.contains(&operation),
        }
    }
}

impl From<Operation> for Target {
    fn from(operation: Operation) -> Target {
        Target::Only(vec![operation])
    }
}

impl From<&[Operation]> for Target {
    fn from(operations: &[Operation]) -> Target {
        Target::Only(operations.to_vec())
    }
}

impl<const N: usize> From<[Operation; N]> for Target {
    fn from(operations: [Operation; N]) -> Target {
        Target::Only(operations.to_vec())
    }
}

/// What the proxy does to a request a fault rule picks.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answers `status` with an S3 XML error body carrying `code`; nothing goes upstream.
    Error { status: u16, code: String },
    /// Waits this long, then handles the request as usual.
    Latency(Duration),
    /// Reads the request and answers nothing until the rule is cleared (then forwards it as
    /// usual) or the client goes away.
    Hang,
    /// Sends the request head and the first half of the body upstream, then cuts the upstream
    /// connection (s3s-fs sees a short body and stores nothing) and resets the client's. A
    /// request without a body is not sent upstream at all.
    ResetMidBody,
}

impl Fault {
    pub fn error(status: u16, code: &str) -> Fault {
        Fault::Error {
            status,
            code: code.to_owned(),
        }
    }

    /// 500 `InternalError`.
    pub fn internal_error() -> Fault {
        Fault::error(500, "InternalError")
    }

    /// 503 `SlowDown` (throttling).
    pub fn slow_down() -> Fault {
        Fault::error(503, "SlowDown")
    }

    /// 403 `AccessDenied` (e.g. a revoked policy).
    pub fn access_denied() -> Fault {
        Fault::error(403, "AccessDenied")
    }
}

/// Which of the requests a rule's target matches it picks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum When {
    Always,
    /// The next N matching requests.
    Next(u32),
    /// Each matching request with this probability, drawn from a generator seeded with `seed`
    /// (one draw per matching request, in arrival order): the same seed and the same request
    /// sequence give the same faults.
    Fraction {
        rate: f64,
        seed: u64,
    },
}

/// How "down" looks to a client. Either way, open connections are closed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// The port stops listening: connecting is refused (a stopped server).
    Refuse,
    /// Connections are accepted and reset at once (e.g. an overloaded or broken front).
    Reset,
}

/// How the store treats conditional creates: `If-None-Match: *` (S3) and
/// `x-oss-forbid-overwrite: true` (OSS) on PutObject and CompleteMultipartUpload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conditional {
    /// Forwarded as they are: s3s-fs answers 412 `PreconditionFailed` to `If-None-Match: *` on
    /// an existing key (PutObject and CompleteMultipartUpload) and ignores
    /// `x-oss-forbid-overwrite`.
    PassThrough,
    /// Like OSS's S3 endpoint: `If-None-Match` or `If-Match` gets 501 `NotImplemented`, and
    /// `x-oss-forbid-overwrite: true` on an existing key gets 409 `FileAlreadyExists`.
    Oss,
    /// A store that overwrites despite `If-None-Match: *` (the existing object is removed from
    /// s3s-fs's directory before the request goes upstream).
    Ignore,
}

/// Where a held request waits (see [`S3Proxy::hold_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldAt {
    /// Read whole from the client, nothing sent upstream yet.
    BeforeUpstream,
    /// Head and first half of the body sent upstream (the store is mid-write). A request
    /// without a body waits before anything goes upstream.
    MidBody,
    /// The store has answered (and acted), the client has not got the answer yet.
    BeforeResponse,
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still being handled (forwarded, hung or held).
    Pending,
    /// A response (the store's or an injected one) was written to the client.
    Sent,
    /// The proxy reset the client's connection (a [`Fault::ResetMidBody`], or "down").
    Reset,
    /// The client went away while the request hung or was held.
    ClientGone,
    /// s3s-fs could not be reached or broke the exchange; the client's connection was reset.
    UpstreamFailed,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Arrival order, from 0.
    pub id: usize,
    /// Which client connection it came on (keep-alive shows as several requests on one).
    pub connection: u64,
    pub method: String,
    /// As sent (percent-encoded), without the query.
    pub path: String,
    pub query: String,
    pub operation: Operation,
    pub bucket: Option<String>,
    /// Percent-decoded.
    pub key: Option<String>,
    /// Names lower-cased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    /// Body length after de-chunking.
    pub body_len: u64,
    /// The status of the response the proxy had for it (the store's or an injected one), even
    /// when it never reached the client (see `outcome`).
    pub status: Option<u16>,
    /// The `<Code>` of an error response.
    pub error_code: Option<String>,
    /// What the proxy did instead of or on top of forwarding: `error 503 SlowDown`,
    /// `latency 200ms`, `hang`, `reset mid-body`, `down`, `oss 501`, `oss 409`,
    /// `ignore: removed existing object`.
    pub injected: Option<String>,
    pub outcome: Outcome,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The (decoded) value of a query parameter, e.g. `partNumber`; `Some("")` for a bare name.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(&self.query)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn succeeded(&self) -> bool {
        self.outcome == Outcome::Sent && matches!(self.status, Some(200..=299))
    }
}

/// Identifies a fault rule, to clear it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultId(u64);

/// The proxy; stops on drop (open connections are closed, hung and held requests end).
pub struct S3Proxy {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    upstream: SocketAddr,
    /// s3s-fs's root directory: a bucket is a directory in it, an object a file below that.
    root: PathBuf,
    port: u16,
}

struct State {
    rules: Vec<Rule>,
    next_rule: u64,
    holds: Vec<HoldSlot>,
    next_hold: u64,
    conditional: Conditional,
    /// Answer ListMultipartUploads from s3s-fs's directory instead of forwarding it.
    emulate_list_uploads: bool,
    down: Option<Down>,
    listening: bool,
    bind_error: Option<String>,
    shutdown: bool,
    log: Vec<Request>,
    /// Clones of the open client connections, to close them when the store goes down.
    connections: HashMap<u64, TcpStream>,
    next_connection: u64,
}

struct Rule {
    id: u64,
    target: Target,
    fault: Fault,
    when: When,
    /// The generator state of a `Fraction` rule.
    rng: u64,
}

struct HoldSlot {
    id: u64,
    operation: Operation,
    at: HoldAt,
    /// Matching requests still to let through before the one to hold.
    skip: u32,
    /// Only requests whose key starts with this count and are held (`None`: every request).
    key_prefix: Option<String>,
    phase: HoldPhase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HoldPhase {
    Armed,
    Claimed(usize),
    Held(usize),
}

impl State {
    /// The fault for a request of `operation`: the first rule that matches and fires.
    fn pick_fault(&mut self, operation: Operation) -> Option<(u64, Fault)> {
        for rule in &mut self.rules {
            if !rule.target.includes(operation) {
                continue;
            }
            let fires = match &mut rule.when {
                When::Always => true,
                When::Next(0) => false,
                When::Next(n) => {
                    *n -= 1;
                    true
                }
                When::Fraction { rate, .. } => next_f64(&mut rule.rng) < *rate,
            };
            if fires {
                return Some((rule.id, rule.fault.clone()));
            }
        }
        None
    }

    fn rule_active(&self, id: u64, operation: Operation) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.id == id && rule.target.includes(operation))
    }

    /// Claims the armed hold this request is the one for, if any.
    fn claim_hold(&mut self, operation: Operation, request: usize) -> Option<(u64, HoldAt)> {
        let key = self.log[request].key.as_deref().unwrap_or("");
        for slot in &mut self.holds {
            if slot.operation != operation || slot.phase != HoldPhase::Armed {
                continue;
            }
            if slot
                .key_prefix
                .as_deref()
                .is_some_and(|prefix| !key.starts_with(prefix))
            {
                continue;
            }
            if slot.skip > 0 {
                slot.skip -= 1;
                continue;
            }
            slot.phase = HoldPhase::Claimed(request);
            return Some((slot.id, slot.at));
        }
        None
    }

    fn hold_phase(&self, id: u64) -> Option<HoldPhase> {
        self.holds
            .iter()
            .find(|slot| slot.id == id)
            .map(|slot| slot.phase)
    }

    fn set_hold_phase(&mut self, id: u64, phase: HoldPhase) {
        if let Some(slot) = self.holds.iter_mut().find(|slot| slot.id == id) {
            slot.phase = phase;
        }
    }

    fn close_connections(&mut self) {
        for connection in self.connections.values() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// A held request (see [`S3Proxy::hold_next`]); dropping it releases the request.
#[must_use = "dropping a Hold releases it at once"]
pub struct Hold {
    shared: Arc<Shared>,
    id: u64,
}

impl Hold {
    /// Waits until a request is held here and returns it; panics after `timeout`.
    pub fn wait_held(&self, timeout: Duration) -> Request {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(HoldPhase::Held(request)) = state.hold_phase(self.id) {
                return state.log[request].clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no request held after {timeout:?}; requests:\n{}",
                summary(&state.log)
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Lets the held request go on (if its client is still there).
    pub fn release(self) {}
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.holds.retain(|slot| slot.id != self.id);
        self.shared.changed.notify_all();
    }
}

impl S3Proxy {
    /// Listens on a free loopback port and forwards to s3s-fs on `upstream_port`, whose root
    /// directory is `root`.
    pub fn start(upstream_port: u16, root: PathBuf) -> S3Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("binding the S3 proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rules: Vec::new(),
                next_rule: 0,
                holds: Vec::new(),
                next_hold: 0,
                conditional: Conditional::PassThrough,
                emulate_list_uploads: false,
                down: None,
                listening: true,
                bind_error: None,
                shutdown: false,
                log: Vec::new(),
                connections: HashMap::new(),
                next_connection: 0,
            }),
            changed: Condvar::new(),
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            root,
            port,
        });
        let accept = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("s3-proxy-accept".into())
                .spawn(move || accept_loop(shared, listener))
                .unwrap()
        };
        S3Proxy {
            shared,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `http://127.0.0.1:<port>`: the S3 endpoint to give the client under test.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.port)
    }

    /// Adds a fault rule. Rules are tried in the order they were added; the first whose target
    /// matches and whose `when` fires decides.
    pub fn fault(&self, target: impl Into<Target>, fault: Fault, when: When) -> FaultId {
        let mut state = self.shared.lock();
        let id = state.next_rule;
        state.next_rule += 1;
        let rng = match when {
            When::Fraction { seed, .. } => seed,
            _ => 0,
        };
        state.rules.push(Rule {
            id,
            target: target.into(),
            fault,
            when,
            rng,
        });
        FaultId(id)
    }

    /// Removes one rule; requests it hangs go on.
    pub fn clear_fault(&self, id: FaultId) {
        let mut state = self.shared.lock();
        state.rules.retain(|rule| rule.id != id.0);
        self.shared.changed.notify_all();
    }

    /// Takes `operation` out of every rule (a rule left with no operation is removed).
    pub fn clear_faults_of(&self, operation: Operation) {
        let mut state = self.shared.lock();
        let all: Vec<Operation> = ALL_OPERATIONS.to_vec();
        state.rules.retain_mut(|rule| {
            let operations = match &mut rule.target {
                Target::All => {
                    rule.target = Target::Only(all.clone());
                    match &mut rule.target {
                        Target::Only(operations) => operations,
                        Target::All => unreachable!(),
                    }
                }
                Target::Only(operations) => operations,
            };
            operations.retain(|o| *o != operation);
            !operations.is_empty()
        });
        self.shared.changed.notify_all();
    }

    /// Removes every rule.
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.rules.clear();
        self.shared.changed.notify_all();
    }

    /// Takes the store down: open connections are closed, and new ones refused or reset.
    /// Returns once that is in effect.
    pub fn down(&self, mode: Down) {
        let mut state = self.shared.lock();
        state.down = Some(mode);
        state.close_connections();
        self.shared.changed.notify_all();
        if mode == Down::Refuse && state.listening {
            drop(state);
            // Wakes the accept thread, which closes the listener when it sees "down".
            let _ = TcpStream::connect(("127.0.0.1", self.shared.port));
            let mut state = self.shared.lock();
            while state.listening {
                state = self.shared.changed.wait(state).unwrap();
            }
        }
    }

    /// Brings the store back after [`S3Proxy::down`]; returns once the port listens again.
    pub fn up(&self) {
        let mut state = self.shared.lock();
        state.down = None;
        self.shared.changed.notify_all();
        while !state.listening {
            if let Some(error) = &state.bind_error {
                panic!("the S3 proxy could not listen again: {error}");
            }
            state = self.shared.changed.wait(state).unwrap();
        }
    }

    pub fn set_conditional(&self, mode: Conditional) {
        self.shared.lock().conditional = mode;
    }

    /// Answers ListMultipartUploads itself, from s3s-fs's directory (s3s-fs 0.14 answers it 501
    /// `NotImplemented`): the uploads created with user metadata (s3s-fs keeps it in
    /// `.bucket-<b64 bucket>.object-<b64 key>.upload-<id>.metadata.json`) and neither completed
    /// nor aborted (`.upload-<id>.json` still there, whose modification time is the upload's
    /// `Initiated`), under the request's `prefix`, in one page. Faults apply first.
    pub fn emulate_list_uploads(&self) {
        self.shared.lock().emulate_list_uploads = true;
    }

    /// The incomplete multipart uploads of `bucket` under `prefix` as s3s-fs keeps them, read
    /// from its directory (what the emulated ListMultipartUploads answers): key, upload id and
    /// creation time, by key.
    pub fn incomplete_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Vec<(String, String, std::time::SystemTime)> {
        self.shared.incomplete_uploads(bucket, prefix)
    }

    /// Holds the next request of `operation` at `at` until the returned [`Hold`] is released
    /// or dropped. The held request's client may go away meanwhile (a killed connector): the
    /// proxy then drops the request there, cutting the upstream body short at `MidBody`.
    pub fn hold_next(&self, operation: Operation, at: HoldAt) -> Hold {
        self.hold_nth(operation, 1, at)
    }

    /// Like [`S3Proxy::hold_next`] for the `n`-th request of `operation` from now (1 = next).
    pub fn hold_nth(&self, operation: Operation, n: u32, at: HoldAt) -> Hold {
        self.hold_slot(operation, None, n, at)
    }

    /// Like [`S3Proxy::hold_nth`], counting only requests whose key starts with `prefix` (e.g.
    /// a topic's objects, not the connector's start-up probe object).
    pub fn hold_nth_under(&self, operation: Operation, prefix: &str, n: u32, at: HoldAt) -> Hold {
        self.hold_slot(operation, Some(prefix.to_owned()), n, at)
    }

    fn hold_slot(
        &self,
        operation: Operation,
        key_prefix: Option<String>,
        n: u32,
        at: HoldAt,
    ) -> Hold {
        assert!(n >= 1, "holds count from 1");
        let mut state = self.shared.lock();
        let id = state.next_hold;
        state.next_hold += 1;
        state.holds.push(HoldSlot {
            id,
            operation,
            at,
            skip: n - 1,
            key_prefix,
            phase: HoldPhase::Armed,
        });
        Hold {
            shared: self.shared.clone(),
            id,
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().log.clone()
    }

    pub fn requests_of(&self, operation: Operation) -> Vec<Request> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|request| request.operation == operation)
            .cloned()
            .collect()
    }

    /// Waits until the `n`-th (from 1, counted since the start) 2xx response to a request of
    /// `operation` has been written to the client, and returns that request. Panics after
    /// `timeout` with the request log.
    pub fn wait_for(&self, operation: Operation, n: usize, timeout: Duration) -> Request {
        self.wait_log(timeout, &format!("{n} successful {operation:?}"), |log| {
            log.iter()
                .filter(|r| r.operation == operation && r.succeeded())
                .nth(n - 1)
                .cloned()
        })
    }

    /// Like [`S3Proxy::wait_for`], counting only requests whose key starts with `prefix`.
    pub fn wait_for_under(
        &self,
        operation: Operation,
        prefix: &str,
        n: usize,
        timeout: Duration,
    ) -> Request {
        let what = format!("{n} successful {operation:?} under {prefix}");
        self.wait_log(timeout, &what, |log| {
            log.iter()
                .filter(|r| r.operation == operation && r.succeeded())
                .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(prefix)))
                .nth(n - 1)
                .cloned()
        })
    }

    /// Waits until the `n`-th (from 1) request of `operation` has arrived, whatever becomes of
    /// it (e.g. to know a request hangs), and returns it.
    pub fn wait_arrived(&self, operation: Operation, n: usize, timeout: Duration) -> Request {
        self.wait_log(timeout, &format!("{n} {operation:?} requests"), |log| {
            log.iter()
                .filter(|r| r.operation == operation)
                .nth(n - 1)
                .cloned()
        })
    }

    /// Waits until the proxy is done with request `id` (answered, reset or dropped).
    pub fn wait_done(&self, id: usize, timeout: Duration) -> Request {
        self.wait_log(timeout, &format!("request {id} done"), |log| {
            log.get(id)
                .filter(|r| r.outcome != Outcome::Pending)
                .cloned()
        })
    }

    fn wait_log(
        &self,
        timeout: Duration,
        what: &str,
        mut found: impl FnMut(&[Request]) -> Option<Request>,
    ) -> Request {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(request) = found(&state.log) {
                return request;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no {what} after {timeout:?}; requests:\n{}",
                summary(&state.log)
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// The request log, one line per request: for a failing test's message.
    pub fn summary(&self) -> String {
        summary(&self.shared.lock().log)
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        let listening = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            state.close_connections();
            self.shared.changed.notify_all();
            state.listening
        };
        if listening {
            let _ = TcpStream::connect(("127.0.0.1", self.shared.port));
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn summary(log: &[Request]) -> String {
    log.iter()
        .map(|r| {
            format!(
                "  #{} conn {} {} {}{}{} {:?} body {} -> {:?} {:?} {}{}\n",
                r.id,
                r.connection,
                r.method,
                r.path,
                if r.query.is_empty() { "" } else { "?" },
                r.query,
                r.operation,
                r.body_len,
                r.status,
                r.outcome,
                r.error_code.as_deref().unwrap_or(""),
                r.injected
                    .as_deref()
                    .map(|i| format!(" [{i}]"))
                    .unwrap_or_default(),
            )
        })
        .collect()
}

const ALL_OPERATIONS: [Operation; 12] = [
    Operation::PutObject,
    Operation::UploadPart,
    Operation::CreateMultipartUpload,
    Operation::CompleteMultipartUpload,
    Operation::AbortMultipartUpload,
    Operation::GetObject,
    Operation::HeadObject,
    Operation::HeadBucket,
    Operation::ListObjects,
    Operation::DeleteObject,
    Operation::ListMultipartUploads,
    Operation::Other,
];

/// SplitMix64: small, seedable, good enough to pick faults.
fn next_f64(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not turn every later call into a poison panic.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Waits until `done` holds; false when the client went away or the proxy stops first.
    fn wait_with_client(&self, client: &TcpStream, mut done: impl FnMut(&State) -> bool) -> bool {
        let mut state = self.lock();
        loop {
            if state.shutdown {
                return false;
            }
            if done(&state) {
                return true;
            }
            if client_gone(client) {
                return false;
            }
            // The client is polled: its going away wakes nobody.
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(20))
                .unwrap()
                .0;
        }
    }

    fn finish(&self, id: usize, outcome: Outcome, response: Option<&Message>) {
        if let Some(response) = response {
            self.record_response(id, response);
        }
        let mut state = self.lock();
        state.log[id].outcome = outcome;
        self.changed.notify_all();
    }

    fn record_response(&self, id: usize, response: &Message) {
        let mut state = self.lock();
        let request = &mut state.log[id];
        let status = response.head.status();
        request.status = status;
        if status.is_some_and(|s| s >= 300) {
            request.error_code = error_code(&response.body);
        }
    }

    fn note(&self, id: usize, injected: String) {
        let mut state = self.lock();
        let request = &mut state.log[id];
        request.injected = Some(match request.injected.take() {
            Some(before) => format!("{before}; {injected}"),
            None => injected,
        });
    }

    /// The object's file in s3s-fs's directory.
    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// The incomplete multipart uploads of `bucket` under `prefix`, as s3s-fs keeps them
    /// (see [`S3Proxy::emulate_list_uploads`]): key, upload id and creation time, by key.
    fn incomplete_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Vec<(String, String, std::time::SystemTime)> {
        let stem = format!(".bucket-{}.object-", base64_url(bucket.as_bytes()));
        let mut uploads = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return uploads;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name
                .strip_prefix(&stem)
                .and_then(|rest| rest.strip_suffix(".metadata.json"))
            else {
                continue;
            };
            let Some((key, upload_id)) = rest.split_once(".upload-") else {
                continue;
            };
            let Some(key) = base64_url_decode(key).and_then(|k| String::from_utf8(k).ok()) else {
                continue;
            };
            let info = self.root.join(format!(".upload-{upload_id}.json"));
            let Ok(initiated) = std::fs::metadata(&info).and_then(|m| m.modified()) else {
                // Completed or aborted: s3s-fs removes the upload's info first.
                continue;
            };
            if key.starts_with(prefix) {
                uploads.push((key, upload_id.to_owned(), initiated));
            }
        }
        uploads.sort();
        uploads
    }

    /// Removes an object the way s3s-fs keeps it: its file and its two metadata files.
    fn remove_object(&self, bucket: &str, key: &str) -> bool {
        let removed = std::fs::remove_file(self.object_path(bucket, key)).is_ok();
        let stem = format!(
            ".bucket-{}.object-{}",
            base64_url(bucket.as_bytes()),
            base64_url(key.as_bytes())
        );
        for suffix in [".metadata.json", ".internal.json"] {
            let _ = std::fs::remove_file(self.root.join(format!("{stem}{suffix}")));
        }
        removed
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut listener = Some(listener);
    loop {
        let Some(open) = listener.as_ref() else {
            // Refusing: wait until the store is up again, then listen on the same port.
            let mut state = shared.lock();
            while state.down == Some(Down::Refuse) && !state.shutdown {
                state = shared.changed.wait(state).unwrap();
            }
            if state.shutdown {
                return;
            }
            drop(state);
            match bind_again(shared.port) {
                Ok(bound) => {
                    listener = Some(bound);
                    shared.lock().listening = true;
                }
                Err(error) => shared.lock().bind_error = Some(error.to_string()),
            }
            shared.changed.notify_all();
            continue;
        };
        let Ok((stream, _)) = open.accept() else {
            continue;
        };
        let mut state = shared.lock();
        if state.shutdown {
            return;
        }
        match state.down {
            Some(Down::Refuse) => {
                drop(stream);
                listener = None;
                state.listening = false;
                shared.changed.notify_all();
            }
            Some(Down::Reset) => reset(&stream),
            None => {
                let id = state.next_connection;
                state.next_connection += 1;
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                state.connections.insert(id, clone);
                drop(state);
                let shared = shared.clone();
                thread::Builder::new()
                    .name(format!("s3-proxy-conn-{id}"))
                    .spawn(move || serve(shared, id, stream))
                    .unwrap();
            }
        }
    }
}

/// Binds the port given up while refusing; retried because the kernel may hold it briefly.
fn bind_again(port: u16) -> io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => return Ok(listener),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Makes the last close of `stream` send a TCP reset instead of a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn client_gone(client: &TcpStream) -> bool {
    if client.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let gone = match client.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = client.set_nonblocking(false);
    gone
}

/// One client connection: requests one after the other (keep-alive), each handled whole.
fn serve(shared: Arc<Shared>, connection: u64, client: TcpStream) {
    if let Ok(clone) = client.try_clone() {
        let mut reader = BufReader::new(clone);
        let mut upstream = None;
        while let Ok(Some(head)) = read_head(&mut reader) {
            if shared.lock().down.is_some() {
                reset(&client);
                break;
            }
            if head
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            {
                // The body is read before anything goes upstream, so the proxy answers this.
                if (&client)
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .is_err()
                {
                    break;
                }
            }
            let Ok((body, body_len)) = read_body(&mut reader, request_framing(&head)) else {
                break;
            };
            let request = Message {
                head,
                body,
                body_len,
            };
            let mut exchange = Exchange {
                shared: &shared,
                client: &client,
                upstream: &mut upstream,
                connection,
            };
            if !exchange.handle(request) {
                break;
            }
        }
    }
    shared.lock().connections.remove(&connection);
}

struct Exchange<'a> {
    shared: &'a Shared,
    client: &'a TcpStream,
    upstream: &'a mut Option<Upstream>,
    connection: u64,
}

struct Upstream {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Upstream {
    fn connect(address: SocketAddr) -> io::Result<Upstream> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Upstream { stream, reader })
    }
}

impl Exchange<'_> {
    /// Handles one request; false when the client's connection is to be closed.
    fn handle(&mut self, request: Message) -> bool {
        let (method, path, query) = request.head.request_target();
        let query_pairs = query_pairs(&query);
        let (bucket, key) = split_path(&path);
        let operation = classify(&method, key.is_some(), &query_pairs, &request.head);
        let id;
        let fault;
        {
            let mut state = self.shared.lock();
            id = state.log.len();
            state.log.push(Request {
                id,
                connection: self.connection,
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                operation,
                bucket: bucket.clone(),
                key: key.clone(),
                headers: request.head.headers.clone(),
                body_len: request.body_len,
                status: None,
                error_code: None,
                injected: None,
                outcome: Outcome::Pending,
            });
            fault = state.pick_fault(operation);
            // Logged with the arrival, so a test that sees the request sees its fault.
            state.log[id].injected = fault.as_ref().map(|(_, fault)| match fault {
                Fault::Error { status, code } => format!("error {status} {code}"),
                Fault::Latency(delay) => format!("latency {delay:?}"),
                Fault::Hang => "hang".into(),
                Fault::ResetMidBody => "reset mid-body".into(),
            });
            self.shared.changed.notify_all();
        }
        let keep_alive = !request.head.wants_close();

        match fault {
            None => {}
            Some((_, Fault::Error { status, code })) => {
                return self.answer_error(id, &request, status, &code) && keep_alive;
            }
            Some((_, Fault::Latency(delay))) => {
                thread::sleep(delay);
            }
            Some((rule, Fault::Hang)) => {
                let cleared = self
                    .shared
                    .wait_with_client(self.client, |state| !state.rule_active(rule, operation));
                if !cleared {
                    self.shared.finish(id, Outcome::ClientGone, None);
                    return false;
                }
            }
            Some((_, Fault::ResetMidBody)) => {
                if request.body_len > 0 {
                    // A connection of its own, so the keep-alive one stays in step.
                    if let Ok(mut cut) = Upstream::connect(self.shared.upstream) {
                        let half = request.head.raw.len() + request.body.len() / 2;
                        let _ = cut.stream.write_all(&request.wire()[..half]);
                        let _ = cut.stream.shutdown(Shutdown::Write);
                    }
                }
                reset(self.client);
                self.shared.finish(id, Outcome::Reset, None);
                return false;
            }
        }

        if matches!(
            operation,
            Operation::PutObject | Operation::CompleteMultipartUpload
        ) {
            if let (Some(bucket), Some(key)) = (&bucket, &key) {
                if let Some(keep) = self.conditional(id, &request, bucket, key) {
                    return keep && keep_alive;
                }
            }
        }

        if operation == Operation::ListMultipartUploads && self.shared.lock().emulate_list_uploads {
            if let Some(bucket) = &bucket {
                let prefix = query_pairs
                    .iter()
                    .find(|(name, _)| name == "prefix")
                    .map(|(_, value)| value.as_str())
                    .unwrap_or("");
                return self.answer_list_uploads(id, bucket, prefix) && keep_alive;
            }
        }

        let hold = self.shared.lock().claim_hold(operation, id);
        let hold_before = hold.filter(|(_, at)| {
            *at == HoldAt::BeforeUpstream || (*at == HoldAt::MidBody && request.body.is_empty())
        });
        if let Some((hold, _)) = hold_before {
            if !self.hold(hold, id) {
                self.shared.finish(id, Outcome::ClientGone, None);
                return false;
            }
        }
        let mid_body = hold
            .filter(|(_, at)| *at == HoldAt::MidBody && !request.body.is_empty())
            .map(|(hold, _)| hold);
        let response = match self.forward(id, &request, &method, mid_body) {
            Ok(response) => response,
            Err(outcome) => {
                if outcome == Outcome::UpstreamFailed {
                    reset(self.client);
                }
                self.shared.finish(id, outcome, None);
                return false;
            }
        };
        if let Some((hold, HoldAt::BeforeResponse)) = hold {
            // The held request shows what the store answered.
            self.shared.record_response(id, &response);
            if !self.hold(hold, id) {
                self.shared.finish(id, Outcome::ClientGone, Some(&response));
                return false;
            }
        }
        let status = response.head.status();
        let code = status
            .filter(|s| *s >= 300)
            .and_then(|_| error_code(&response.body));
        let sent = self.deliver(id, &response.wire(), status, code);
        let close = response.head.wants_close()
            || response_framing(&response.head, &method) == Framing::ToEof;
        if close {
            *self.upstream = None;
        }
        sent && keep_alive && !close
    }

    /// The store modes for conditional creates: `Some(keep-alive)` when the proxy answered.
    fn conditional(
        &mut self,
        id: usize,
        request: &Message,
        bucket: &str,
        key: &str,
    ) -> Option<bool> {
        let mode = self.shared.lock().conditional;
        let head = &request.head;
        match mode {
            Conditional::PassThrough => None,
            Conditional::Oss => {
                if head.header("if-none-match").is_some() || head.header("if-match").is_some() {
                    self.shared.note(id, "oss 501".into());
                    return Some(self.answer_error(id, request, 501, "NotImplemented"));
                }
                let forbid = head
                    .header("x-oss-forbid-overwrite")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if forbid && self.shared.object_path(bucket, key).is_file() {
                    self.shared.note(id, "oss 409".into());
                    return Some(self.answer_error(id, request, 409, "FileAlreadyExists"));
                }
                None
            }
            Conditional::Ignore => {
                if head.header("if-none-match").is_some() && self.shared.remove_object(bucket, key)
                {
                    self.shared
                        .note(id, "ignore: removed existing object".into());
                }
                None
            }
        }
    }

    /// Marks the request held and waits for the release; false when the client went away.
    fn hold(&mut self, hold: u64, id: usize) -> bool {
        {
            let mut state = self.shared.lock();
            state.set_hold_phase(hold, HoldPhase::Held(id));
            self.shared.changed.notify_all();
        }
        self.shared
            .wait_with_client(self.client, |state| state.hold_phase(hold).is_none())
    }

    /// Sends the request upstream and reads the answer. A kept-alive upstream connection that
    /// fails before answering is replaced and the request sent again once (s3s-fs may have
    /// closed it while idle).
    fn forward(
        &mut self,
        id: usize,
        request: &Message,
        method: &str,
        mut mid_body: Option<u64>,
    ) -> Result<Message, Outcome> {
        let wire = request.wire();
        for attempt in 0..2 {
            let reused = self.upstream.is_some();
            if self.upstream.is_none() {
                match Upstream::connect(self.shared.upstream) {
                    Ok(upstream) => *self.upstream = Some(upstream),
                    Err(_) => return Err(Outcome::UpstreamFailed),
                }
            }
            let upstream = self.upstream.as_mut().unwrap();
            let written = if let Some(hold) = mid_body.take() {
                let half = request.head.raw.len() + request.body.len() / 2;
                let written = upstream.stream.write_all(&wire[..half]);
                if !self.hold(hold, id) {
                    // The client is gone mid-body: so is the rest of the body.
                    if let Some(upstream) = self.upstream.take() {
                        let _ = upstream.stream.shutdown(Shutdown::Write);
                    }
                    return Err(Outcome::ClientGone);
                }
                let upstream = self.upstream.as_mut().unwrap();
                written.and_then(|()| upstream.stream.write_all(&wire[half..]))
            } else {
                upstream.stream.write_all(&wire)
            };
            let upstream = self.upstream.as_mut().unwrap();
            // Read even after a failed write: the store may have answered early.
            match read_response(&mut upstream.reader, method) {
                Ok(response) => {
                    if written.is_err() {
                        *self.upstream = None;
                    }
                    return Ok(response);
                }
                Err(_) => {
                    *self.upstream = None;
                    if !(reused && attempt == 0) {
                        return Err(Outcome::UpstreamFailed);
                    }
                }
            }
        }
        Err(Outcome::UpstreamFailed)
    }

    /// The emulated ListMultipartUploads answer (see [`S3Proxy::emulate_list_uploads`]).
    fn answer_list_uploads(&mut self, id: usize, bucket: &str, prefix: &str) -> bool {
        self.shared.note(id, "emulated ListMultipartUploads".into());
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult \
             xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket>\
             <KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>{}</Prefix>\
             <MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>",
            xml_escape(bucket),
            xml_escape(prefix)
        );
        for (key, upload_id, initiated) in self.shared.incomplete_uploads(bucket, prefix) {
            body.push_str(&format!(
                "<Upload><Key>{}</Key><UploadId>{upload_id}</UploadId>\
                 <Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
                xml_escape(&key),
                iso8601(initiated)
            ));
        }
        body.push_str("</ListMultipartUploadsResult>");
        let text = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
             x-amz-request-id: s3-proxy-{id}\r\n\r\n{body}",
            body.len()
        );
        self.deliver(id, text.as_bytes(), Some(200), None)
    }

    /// Writes an S3 error response; false when the client is gone.
    fn answer_error(&mut self, id: usize, request: &Message, status: u16, code: &str) -> bool {
        let (method, path, _) = request.head.request_target();
        let body = if method == "HEAD" {
            String::new()
        } else {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{}</Message><Resource>{}</Resource>\
                 <RequestId>s3-proxy-{id}</RequestId></Error>",
                message_for(code),
                xml_escape(&path)
            )
        };
        let text = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
             x-amz-request-id: s3-proxy-{id}\r\n\r\n{body}",
            reason(status),
            body.len()
        );
        self.deliver(id, text.as_bytes(), Some(status), Some(code.to_owned()))
    }

    /// Writes a response to the client and logs it. The last byte is written with the log
    /// locked, so whoever has seen the whole response (the client, hence the test) finds the
    /// request logged as sent. False when the client is gone.
    fn deliver(
        &mut self,
        id: usize,
        bytes: &[u8],
        status: Option<u16>,
        error_code: Option<String>,
    ) -> bool {
        let (most, last) = bytes.split_at(bytes.len().saturating_sub(1));
        let mut client = self.client;
        let mut sent = client.write_all(most).is_ok();
        let mut state = self.shared.lock();
        if sent && !last.is_empty() {
            // Not blocking with the log locked: a stopped client must not stall the proxy.
            let _ = client.set_nonblocking(true);
            let quick = client.write(last);
            let _ = client.set_nonblocking(false);
            sent = match quick {
                Ok(1) => true,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    drop(state);
                    let sent = client.write_all(last).is_ok();
                    state = self.shared.lock();
                    sent
                }
                _ => false,
            };
        }
        let request = &mut state.log[id];
        request.status = status;
        request.error_code = error_code;
        request.outcome = if sent {
            Outcome::Sent
        } else {
            Outcome::ClientGone
        };
        self.shared.changed.notify_all();
        sent
    }
}

fn message_for(code: &str) -> &'static str {
    match code {
        "InternalError" => "We encountered an internal error. Please try again.",
        "SlowDown" => "Please reduce your request rate.",
        "AccessDenied" => "Access Denied",
        "FileAlreadyExists" => {
            "The object you specified already exists and can not be overwritten."
        }
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        _ => "Injected by the test S3 proxy.",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `<Code>` of an S3 XML error body (chunk framing around it does not matter).
fn error_code(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_owned())
}

/// Classifies by the SDK's `x-id` query parameter when there is one, else by method, path and
/// sub-resources.
fn classify(method: &str, has_key: bool, query: &[(String, String)], head: &Head) -> Operation {
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    if let Some((_, x_id)) = query.iter().find(|(n, _)| n == "x-id") {
        return match x_id.as_str() {
            "PutObject" => Operation::PutObject,
            "UploadPart" => Operation::UploadPart,
            "CreateMultipartUpload" => Operation::CreateMultipartUpload,
            "CompleteMultipartUpload" => Operation::CompleteMultipartUpload,
            "AbortMultipartUpload" => Operation::AbortMultipartUpload,
            "GetObject" => Operation::GetObject,
            "DeleteObject" => Operation::DeleteObject,
            "ListObjects" | "ListObjectsV2" => Operation::ListObjects,
            "ListMultipartUploads" => Operation::ListMultipartUploads,
            _ => Operation::Other,
        };
    }
    const OBJECT_SUBRESOURCES: [&str; 9] = [
        "acl",
        "tagging",
        "attributes",
        "legal-hold",
        "retention",
        "restore",
        "select",
        "torrent",
        "delete",
    ];
    const LIST_PARAMETERS: [&str; 9] = [
        "list-type",
        "prefix",
        "delimiter",
        "marker",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "fetch-owner",
    ];
    let subresource = OBJECT_SUBRESOURCES.iter().any(|s| has(s));
    let copy = head.header("x-amz-copy-source").is_some();
    match (method, has_key) {
        ("PUT", true) if has("partNumber") && has("uploadId") && !copy => Operation::UploadPart,
        ("PUT", true) if !subresource && !copy && !has("uploadId") => Operation::PutObject,
        ("POST", true) if has("uploads") => Operation::CreateMultipartUpload,
        ("POST", true) if has("uploadId") => Operation::CompleteMultipartUpload,
        ("DELETE", true) if has("uploadId") => Operation::AbortMultipartUpload,
        ("DELETE", true) if !subresource => Operation::DeleteObject,
        ("GET", true) if !subresource && !has("uploadId") => Operation::GetObject,
        ("HEAD", true) => Operation::HeadObject,
        ("HEAD", false) => Operation::HeadBucket,
        ("GET", false) if has("uploads") => Operation::ListMultipartUploads,
        ("GET", false)
            if query
                .iter()
                .all(|(n, _)| LIST_PARAMETERS.contains(&n.as_str())) =>
        {
            Operation::ListObjects
        }
        _ => Operation::Other,
    }
}

/// `/bucket/key...` (path style): the bucket and the percent-decoded key.
fn split_path(path: &str) -> (Option<String>, Option<String>) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return (None, None);
    }
    match trimmed.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => {
            (Some(percent_decode(bucket)), Some(percent_decode(key)))
        }
        Some((bucket, _)) => (Some(percent_decode(bucket)), None),
        None => (Some(percent_decode(trimmed)), None),
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (percent_decode(name), percent_decode(value)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// URL-safe base64 without padding: how s3s-fs names an object's metadata files.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of [`base64_url`]; `None` for a character outside its alphabet.
fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// `2024-05-01T12:34:56.789Z`, as S3 writes times in XML.
fn iso8601(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (days, seconds) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        since.subsec_millis()
    )
}

/// A request or a response: its head as received and its body as framed on the wire.
struct Message {
    head: Head,
    body: Vec<u8>,
    /// The body's length without chunk framing.
    body_len: u64,
}

impl Message {
    fn wire(&self) -> Vec<u8> {
        let mut wire = Vec::with_capacity(self.head.raw.len() + self.body.len());
        wire.extend_from_slice(&self.head.raw);
        wire.extend_from_slice(&self.body);
        wire
    }
}

struct Head {
    /// The start line and the headers, byte for byte, with the blank line.
    raw: Vec<u8>,
    start: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Method, path and query of a request line.
    fn request_target(&self) -> (String, String, String) {
        let mut parts = self.start.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        (method, path.to_owned(), query.to_owned())
    }

    fn status(&self) -> Option<u16> {
        self.start.split(' ').nth(1)?.parse().ok()
    }

    fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || self.start.starts_with("HTTP/1.0")
            || self.start.ends_with("HTTP/1.0")
    }
}

/// Reads a start line and headers; `None` on a clean end of stream before any byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut start = String::new();
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if start.is_empty() {
            if text.is_empty() {
                // Blank lines before a request line are allowed (RFC 9112 §2.2).
                raw.clear();
                continue;
            }
            start = text.to_owned();
        } else if text.is_empty() {
            return Ok(Some(Head {
                raw,
                start,
                headers,
            }));
        } else if let Some((name, value)) = text.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        if raw.len() > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    ToEof,
}

fn request_framing(head: &Head) -> Framing {
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(length) = head.header("content-length") {
        Framing::Length(length.parse().unwrap_or(0))
    } else {
        Framing::Empty
    }
}

fn response_framing(head: &Head, method: &str) -> Framing {
    let status = head.status().unwrap_or(0);
    if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(length) = head.header("content-length") {
        Framing::Length(length.parse().unwrap_or(0))
    } else {
        Framing::ToEof
    }
}

/// The final response (interim 1xx responses are skipped).
fn read_response(reader: &mut impl BufRead, method: &str) -> io::Result<Message> {
    loop {
        let head = read_head(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let (body, body_len) = read_body(reader, response_framing(&head, method))?;
        if head.status().is_some_and(|s| (100..200).contains(&s)) {
            continue;
        }
        return Ok(Message {
            head,
            body,
            body_len,
        });
    }
}

/// The body as framed on the wire, and its length without chunk framing.
fn read_body(reader: &mut impl BufRead, framing: Framing) -> io::Result<(Vec<u8>, u64)> {
    match framing {
        Framing::Empty => Ok((Vec::new(), 0)),
        Framing::Length(length) => {
            let mut body = vec![0; length as usize];
            reader.read_exact(&mut body)?;
            Ok((body, length))
        }
        Framing::ToEof => {
            let mut body = Vec::new();
            reader.read_to_end(&mut body)?;
            let length = body.len() as u64;
            Ok((body, length))
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut total = 0u64;
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(&line);
                let text = String::from_utf8_lossy(&line);
                let size = text.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
                if size == 0 {
                    // Trailers, up to the blank line.
                    loop {
                        let mut line = Vec::new();
                        if reader.read_until(b'\n', &mut line)? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        body.extend_from_slice(&line);
                        if line == b"\r\n" || line == b"\n" {
                            return Ok((body, total));
                        }
                    }
                }
                let start = body.len();
                body.resize(start + size as usize + 2, 0);
                reader.read_exact(&mut body[start..])?;
                total += size;
            }
        }
    }
}

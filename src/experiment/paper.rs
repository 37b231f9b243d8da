//! The paper's numbers, in one place: Table I (virtual link setup and
//! teardown, ms), Fig. 11 (plain signaling at tb3, ms), Table II (HMAC, µs)
//! and the §IV-B estimate for ten routers. Reports print them beside ours
//! and divide by them; nothing else in the code may restate them.

/// Table I, setup: [A] external program.
pub const SETUP_A: f64 = 56.8;
/// Table I, setup: [H] tunnel end on tb1.
pub const SETUP_H: f64 = 22.7;
/// Table I, setup: [C] tunnel end on tb4.
pub const SETUP_C: f64 = 23.0;
/// Table I, setup: [B] NSIS signaling.
pub const SETUP_B: f64 = 32.4;
/// Table I, teardown: [A] external program.
pub const TEARDOWN_A: f64 = 348.5;
/// Table I, teardown: [H] tunnel end on tb1.
pub const TEARDOWN_H: f64 = 189.8;
/// Table I, teardown: [C] tunnel end on tb4.
pub const TEARDOWN_C: f64 = 152.5;
/// Table I, teardown: [B] NSIS signaling.
pub const TEARDOWN_B: f64 = 157.2;

/// Fig. 11 at tb3: [D] GIST handshake.
pub const D: f64 = 1.25;
/// Fig. 11 at tb3: [E]−[D] RESERVE processing.
pub const E_MINUS_D: f64 = 1.15;
/// Fig. 11 at tb3: [F] RESPONSE processing.
pub const F: f64 = 0.75;
/// Plain signaling [B]−[C].
pub const SIGNALING: f64 = 9.4;
/// q_h + r_h at tb4, an input of the setup formula.
pub const QH_RH: f64 = 1.19;
/// The setup formula's estimate for ten routers (§IV-B).
pub const TEN_NODE_ESTIMATE: f64 = 75.54;

/// One row of Table II: (avg, min, max, stddev) in µs.
pub type HmacRow = (f64, f64, f64, f64);
/// Table II: HMAC creation.
pub const HMAC_CREATE: HmacRow = (28.672, 24.026, 79.77, 7.011);
/// Table II: HMAC verification.
pub const HMAC_VERIFY: HmacRow = (33.903, 30.095, 44.746, 2.465);

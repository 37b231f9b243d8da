//! Classic BPF socket filters: programs written with named jump targets,
//! resolved into the kernel's `sock_filter` array, and attached with
//! `SO_ATTACH_FILTER`. A filter runs in the kernel before a datagram is
//! queued, so what it drops never wakes the reading thread.

use std::io;
use std::os::fd::RawFd;

/// One instruction, as the kernel takes it.
pub const fn ins(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Where a conditional jump goes.
#[derive(Debug, Clone, Copy)]
pub enum To {
    /// The next instruction.
    Next,
    /// The instruction after this label.
    Label(&'static str),
}

/// A line of a program with named jump targets.
#[derive(Debug, Clone, Copy)]
pub enum Line {
    Ins(u32, u32),
    Jump(u32, u32, To, To),
    Label(&'static str),
}

/// Resolves the labels of `lines` into jump offsets. Programs are constants
/// of this crate: a missing label, a backward jump or one beyond 255
/// instructions is a bug, so it panics (every program has a test).
pub fn assemble(lines: &[Line]) -> Vec<libc::sock_filter> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for l in lines {
        match l {
            Line::Label(name) => {
                assert!(at.insert(*name, n).is_none(), "label {name} twice");
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for l in lines {
        let here = out.len();
        let off = |t: &To| -> u8 {
            match t {
                To::Next => 0,
                To::Label(name) => {
                    let target = *at.get(name).unwrap_or_else(|| panic!("no label {name}"));
                    let d = target
                        .checked_sub(here + 1)
                        .unwrap_or_else(|| panic!("jump back to {name}"));
                    u8::try_from(d).unwrap_or_else(|_| panic!("jump to {name} too far"))
                }
            }
        };
        match l {
            Line::Label(_) => {}
            Line::Ins(code, k) => out.push(ins(*code, 0, 0, *k)),
            Line::Jump(code, k, t, f) => {
                // An unconditional jump's offset is `k`, which this does not set.
                assert!(
                    code & 0x07 == libc::BPF_JMP && code & 0xf0 != libc::BPF_JA,
                    "not a conditional jump: {code:#x}"
                );
                out.push(ins(*code, off(t), off(f), *k))
            }
        }
    }
    out
}

/// Attaches `prog` to socket `fd`; `what` names the socket in the error.
/// Hand-written: nix has no SO_ATTACH_FILTER.
pub fn attach(fd: RawFd, prog: &[libc::sock_filter], what: &str) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` and the program it points to outlive the call (the
    // kernel copies the program); the length matches the struct.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const _ as *const libc::c_void,
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("SO_ATTACH_FILTER on {what}: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Line::*;

    const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    const RET: u32 = libc::BPF_RET | libc::BPF_K;

    #[test]
    fn labels_become_forward_offsets() {
        let p = assemble(&[
            Jump(JEQ, 1, To::Next, To::Label("drop")),
            Jump(JEQ, 2, To::Label("keep"), To::Next),
            Label("drop"),
            Ins(RET, 0),
            Label("keep"),
            Ins(RET, u32::MAX),
        ]);
        let raw: Vec<(u16, u8, u8, u32)> = p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        assert_eq!(
            raw,
            vec![
                (JEQ as u16, 0, 1, 1),
                (JEQ as u16, 1, 0, 2),
                (RET as u16, 0, 0, 0),
                (RET as u16, 0, 0, u32::MAX),
            ]
        );
    }

    #[test]
    #[should_panic(expected = "no label nowhere")]
    fn a_missing_label_is_refused() {
        assemble(&[Jump(JEQ, 0, To::Label("nowhere"), To::Next), Ins(RET, 0)]);
    }

    #[test]
    #[should_panic(expected = "jump to far too far")]
    fn a_jump_beyond_255_is_refused() {
        let mut p = vec![Jump(JEQ, 0, To::Label("far"), To::Next)];
        p.extend(std::iter::repeat_n(Ins(RET, 0), 256));
        p.extend([Label("far"), Ins(RET, 0)]);
        assemble(&p);
    }

    #[test]
    #[should_panic(expected = "not a conditional jump")]
    fn an_unconditional_jump_is_refused() {
        assemble(&[
            Jump(libc::BPF_JMP | libc::BPF_JA, 0, To::Label("x"), To::Next),
            Label("x"),
            Ins(RET, 0),
        ]);
    }

    #[test]
    #[should_panic(expected = "jump back to top")]
    fn a_backward_jump_is_refused() {
        assemble(&[
            Label("top"),
            Ins(RET, 0),
            Jump(JEQ, 0, To::Label("top"), To::Next),
        ]);
    }
}

#!/usr/bin/env python3
"""An NSIS-ka-like GIST/QoS NSLP/VLSP peer, independent of vlsp's Rust code.

Written from RFC 5971 (GIST), RFC 5974 (QoS NSLP), RFC 5981 (Session
Authorization) and the NSIS-ka facts of protocol.md §10, then checked byte for
byte against NSIS-ka's own captures (`selftest`). Python standard library only.

It plays NSIS-ka 0.98's role in D-mode over UDP port 270:
  selftest             rebuild the nsiska-both-dmode-2node vectors #50..#56 and
                       check their HMACs (no network; proves the encoder).
  respond  --local A   QNR: answer Query/Confirm, verify the RESERVE's
                       SESSION_AUTH (NSIS-ka recipe, key 1), answer with a
                       signed RESPONSE (#54), answer the TEAR (#56).
  initiate --local A --peer B ...
                       QNI: Query (#50), Confirm (#52), signed RESERVE (#53,
                       START_TIME = now + 6000 s), check the RESPONSE and its
                       HMAC, then on a line on stdin (or --hold) send the
                       unsigned tearing RESERVE (#55).

Every line it prints starts with a tag: EVENT (progress), DIFF (vlsp did
something NSIS-ka does not), ERROR (a check failed), UP / DOWN (milestones).
Exit status 0 when no ERROR was printed.
"""

import argparse
import hashlib
import hmac
import os
import select
import socket
import struct
import sys
import time

MAGIC = bytes.fromhex("4e04bda5")
GIST_PORT = 270
NSLPID_QOS = 1
KEY_ID = 1
KEY = b"12345678901234567890123456789012"

# GIST message types and object types (RFC 5971 A.1, A.2).
G_QUERY, G_RESPONSE, G_CONFIRM, G_DATA, G_ERROR = 0, 1, 2, 3, 4
O_MRI, O_SID, O_NLI, O_SP, O_SCD, O_QCOOKIE, O_RCOOKIE, O_NAT, O_NSLP, O_ERR = range(10)
F_S, F_R = 0x80, 0x40
MRI_D = 0x0020  # direction flag in the MRI's flag half-word

# QoS NSLP (RFC 5974): message types, object types, INFO_SPEC.
N_RESERVE, N_QUERY, N_RESPONSE = 1, 2, 3
N_RII, N_RSN, N_PC, N_INFO, N_QSPEC = 0x001, 0x002, 0x005, 0x006, 0x00B
N_AUTH, N_VLSP = 0x016, 0x0FE
TEAR = 0x00020000  # in the header word: "01 02 00 00" is NSIS-ka's tearing RESERVE
AB_FORWARD = 2

# Session Authorization attributes (RFC 5981, NSIS-ka numbering).
A_ENT, A_SRC, A_DST, A_START, A_END, A_LIST, A_DATA = 1, 2, 3, 4, 5, 6, 7
ENT_FQDN, ENT_HMAC_SIGNED = 3, 10
HMAC_LEN = 20  # NSIS-ka: full SHA-1 although the transform says SHA1-96

ERRORS = []


def say(tag, text):
    print(f"{tag} {text}", flush=True)
    if tag == "ERROR":
        ERRORS.append(text)


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def ip(a):
    return socket.inet_aton(a)


# ------------------------------------------------------------------ GIST


def gtlv(otype, value, ab=0):
    assert len(value) % 4 == 0
    return struct.pack("!HH", (ab << 14) | otype, len(value) // 4) + value


def gist(mtype, hops, flags, objs, qmode=False):
    body = b"".join(objs)
    c = 0x80 if qmode else 0
    hdr = struct.pack("!BBHHBB", 1, hops, len(body) // 4, NSLPID_QOS, c | mtype, flags)
    return MAGIC + hdr + body


def mri(src, dst, upstream):
    flags = 0x4800 | (MRI_D if upstream else 0)  # IPv4, P (protocol present)
    v = struct.pack("!BBH4s4sBBBB", 0, 0, flags, ip(src), ip(dst), 0, 0, 17, 0)
    return gtlv(O_MRI, v)


def nli(ttl, peer_id, addr):
    return gtlv(O_NLI, struct.pack("!BBHI", 16, ttl, 0x4000, 30000) + peer_id + ip(addr))


def parse_gist(buf):
    """(type, hops, flags, [(otype, start, end, value)]) or raises ValueError."""
    if buf[:4] != MAGIC:
        raise ValueError("no GIST magic number")
    ver, hops, length, nslpid, ctype, flags = struct.unpack("!BBHHBB", buf[4:12])
    if ver != 1 or 12 + 4 * length != len(buf):
        raise ValueError(f"bad GIST header (version {ver}, {length} words, {len(buf)} bytes)")
    objs, off = [], 12
    while off < len(buf):
        t, n = struct.unpack("!HH", buf[off : off + 4])
        end = off + 4 + 4 * (n & 0x0FFF)
        objs.append((t & 0x0FFF, off, end, buf[off + 4 : end]))
        off = end
    return ctype & 0x7F, hops, flags, objs


def obj(objs, otype):
    for t, s, e, v in objs:
        if t == otype:
            return v
    return None


def mri_parts(v):
    flags = struct.unpack("!H", v[2:4])[0]
    return socket.inet_ntoa(v[4:8]), socket.inet_ntoa(v[8:12]), bool(flags & MRI_D)


def nli_parts(v):
    pi_len, ttl = v[0], v[1]
    pid = v[8 : 8 + pi_len]
    addr = socket.inet_ntoa(v[8 + ((pi_len + 3) & ~3) :][:4])
    return ttl, pid, addr


# -------------------------------------------------------------- QoS NSLP


def ntlv(otype, value, ab=0):
    value = pad4(value)
    return struct.pack("!HH", (ab << 14) | otype, len(value) // 4) + value


def nslp(header_word, objs):
    return struct.pack("!I", header_word) + b"".join(objs)


def parse_nslp(buf, base):
    """(header word, [(otype, abs start, abs end, value)]); base = offset of buf in the PDU."""
    word = struct.unpack("!I", buf[:4])[0]
    objs, off = [], 4
    while off < len(buf):
        t, n = struct.unpack("!HH", buf[off : off + 4])
        end = off + 4 + 4 * (n & 0x0FFF)
        objs.append((t & 0x0FFF, base + off, base + end, buf[off + 4 : end]))
        off = end
    return word, objs


def qspec(rate):
    """QSPEC as NSIS-ka's VLSP client sends it: QoS Desired, TMOD-1 with no MPS, Admission Priority 2."""
    r = struct.pack("!f", float(rate))
    tmod = r + struct.pack("!f", 100000.0) + r + struct.pack("!I", 1500)
    desired = struct.pack("!HH", 0x8001, 4) + tmod + struct.pack("!HH", 0x8009, 1) + bytes([2, 2, 0, 0])
    return struct.pack("!I", 0x00001000 | (len(desired) // 4 + 1)) + struct.pack("!HH", 0, len(desired) // 4) + desired


def vlsp_obj(vnet, src_vnode, dst_vnode, src_vif, dst_vif, vlink, tunnel):
    v = vnet.to_bytes(16, "big") + src_vnode.to_bytes(16, "big") + dst_vnode.to_bytes(16, "big")
    v += struct.pack("!QQQI", src_vif, dst_vif, vlink, tunnel)
    return ntlv(N_VLSP, v, AB_FORWARD)


def info_spec(cls, code, addr, text):
    esi = b"\0" * 10 + b"\xff\xff" + ip(addr)  # IPv6 ESI holding ::ffff:IPv4, as NSIS-ka
    return ntlv(N_INFO, struct.pack("!BBBB", 0, code, (cls << 4) | 2, 4) + esi + text.encode())


def attr(xtype, sub, value):
    return pad4(struct.pack("!HBB", 4 + len(value), xtype, sub) + value)


def auth_obj(attrs_before_data):
    """A SESSION_AUTH object with AUTHENTICATION_DATA (key 1, zero MAC) last."""
    attrs = attrs_before_data + [attr(A_DATA, 0, struct.pack("!I", KEY_ID) + b"\0" * HMAC_LEN)]
    return ntlv(N_AUTH, b"".join(attrs), AB_FORWARD)


def obj_list(types):
    return attr(A_LIST, 0, struct.pack("!H", len(types)) + b"".join(struct.pack("!H", t) for t in types))


def reserve_auth(entity, src, dst, start):
    return auth_obj(
        [
            attr(A_ENT, ENT_FQDN, entity.encode()),
            attr(A_ENT, ENT_HMAC_SIGNED, struct.pack("!HH", 0, 2)),
            attr(A_SRC, 1, ip(src)),
            attr(A_DST, 1, ip(dst)),
            attr(A_START, 1, struct.pack("!Q", start)),
            obj_list([N_RII, N_VLSP]),
        ]
    )


def response_auth(src, now):
    return auth_obj(
        [
            attr(A_ENT, ENT_HMAC_SIGNED, struct.pack("!HH", 0, 2)),
            attr(A_SRC, 1, ip(src)),
            attr(A_START, 1, struct.pack("!Q", now)),
            obj_list([N_RII, N_VLSP]),
        ]
    )


def parse_attrs(v):
    out, off = [], 0
    while off + 4 <= len(v):
        n, x, s = struct.unpack("!HBB", v[off : off + 4])
        if n < 4:
            break
        out.append((x, s, v[off + 4 : off + n]))
        off += (n + 3) & ~3
    return out


# ------------------------------------------------------------------ HMAC


def hmac_input(pdu):
    """NSIS-ka's HMAC input for a UDP PDU (magic included), and the SESSION_AUTH objects found."""
    _, _, _, gobjs = parse_gist(pdu)
    parts = []  # (start, end)
    auths = []
    for t, s, e, v in gobjs:
        if t in (O_MRI, O_SID):
            parts.append((s, e))
        if t == O_NSLP:
            _, nobjs = parse_nslp(v, s + 4)
            listed = set()
            for nt, ns, ne, nv in nobjs:
                if nt == N_AUTH:
                    attrs = parse_attrs(nv)
                    auths.append((ns, ne, attrs))
                    for x, sub, val in attrs:
                        if x == A_LIST:
                            cnt = struct.unpack("!H", val[:2])[0]
                            for i in range(cnt):
                                listed.add(struct.unpack("!H", val[2 + 2 * i : 4 + 2 * i])[0] & 0x0FFF)
            for nt, ns, ne, nv in nobjs:
                # NSIS-ka compares NSLP types with GIST's SessionID (1) and MRI (0): RII is never covered.
                if nt in listed and nt not in (0, 1, N_AUTH):
                    parts.append((ns, ne))
            for ns, ne, _ in auths:
                parts.append((ns, ne - HMAC_LEN))
    data = pdu[4:6] + b"".join(pdu[s:e] for s, e in sorted(set(parts)))
    return data, auths


def sign(pdu):
    data, auths = hmac_input(pdu)
    mac = hmac.new(KEY, data, hashlib.sha1).digest()
    out = bytearray(pdu)
    for _, ne, _ in auths:
        out[ne - HMAC_LEN : ne] = mac
    return bytes(out)


def verify(pdu, now, max_skew=None):
    """'unsigned', 'ok', or the reason it fails."""
    data, auths = hmac_input(pdu)
    if not auths:
        return "unsigned"
    for ns, ne, attrs in auths:
        ad = [v for x, s, v in attrs if x == A_DATA]
        if not ad or len(ad[0]) < 4:
            return "no AUTHENTICATION_DATA"
        key_id = struct.unpack("!I", ad[0][:4])[0]
        if key_id != KEY_ID:
            return f"key id {key_id}, not {KEY_ID}"
        got = pdu[ne - HMAC_LEN : ne]
        if len(ad[0]) - 4 != HMAC_LEN:
            return f"MAC of {len(ad[0]) - 4} bytes, NSIS-ka writes {HMAC_LEN}"
        want = hmac.new(KEY, data, hashlib.sha1).digest()
        if not hmac.compare_digest(got, want):
            return "HMAC mismatch (NSIS-ka recipe, key 1)"
        for x, s, v in attrs:
            if x == A_START and max_skew is not None:
                st = struct.unpack("!Q", v[:8])[0]
                if st > now + max_skew:
                    return f"START_TIME {st} is {st - now} s ahead"
    return "ok"


# ------------------------------------------------------------ messages


class Msgs:
    """Builders for the seven messages of nsiska-both-dmode-2node, by role."""

    def __init__(self, sid, qni, qnr, qni_pid, qnr_pid):
        self.sid, self.qni, self.qnr = sid, qni, qnr
        self.qni_pid, self.qnr_pid = qni_pid, qnr_pid

    def head(self, upstream, ttl, nli_ttl=None):
        who, pid = (self.qnr, self.qnr_pid) if upstream else (self.qni, self.qni_pid)
        return [
            mri(self.qni, self.qnr, upstream),
            gtlv(O_SID, self.sid),
            nli(ttl if nli_ttl is None else nli_ttl, pid, who),
        ]

    def query(self, qcookie):
        return gist(G_QUERY, 100, F_S | F_R, self.head(False, 103) + [gtlv(O_QCOOKIE, qcookie)], qmode=True)

    def response(self, qcookie, rcookie):
        objs = self.head(True, 0) + [gtlv(O_QCOOKIE, qcookie), gtlv(O_RCOOKIE, rcookie)]
        return gist(G_RESPONSE, 1, F_S | F_R, objs)

    def confirm(self, rcookie):
        return gist(G_CONFIRM, 1, F_S, self.head(False, 103) + [gtlv(O_RCOOKIE, rcookie)])

    def data(self, upstream, nslp_bytes):
        return gist(G_DATA, 1, F_S, self.head(upstream, 103) + [gtlv(O_NSLP, nslp_bytes)])

    def reserve(self, rsn, epoch, rii, rate, vlsp, entity, start):
        n = nslp(
            0x01000000,
            [
                ntlv(N_RSN, struct.pack("!II", rsn, epoch)),
                ntlv(N_RII, struct.pack("!I", rii)),
                ntlv(N_PC, struct.pack("!I", 0x00000400)),
                ntlv(N_QSPEC, qspec(rate)),
                vlsp,
                reserve_auth(entity, self.qni, self.qnr, start),
            ],
        )
        return sign(self.data(False, n))

    def reserve_response(self, rii, vlsp, now):
        objs = [] if rii is None else [ntlv(N_RII, struct.pack("!I", rii))]
        objs += [info_spec(2, 1, self.qnr, "Reservation successful"), vlsp, response_auth(self.qnr, now)]
        return sign(self.data(True, nslp(0x03000000, objs)))

    def tear(self, rsn, epoch, rii):
        objs = [ntlv(N_RSN, struct.pack("!II", rsn, epoch)), ntlv(N_RII, struct.pack("!I", rii))]
        return self.data(False, nslp(0x01000000 | TEAR, objs))

    def tear_response(self, rii):
        objs = [] if rii is None else [ntlv(N_RII, struct.pack("!I", rii))]
        objs.append(info_spec(2, 2, self.qnr, "Tear down successful"))
        return self.data(True, nslp(0x03000000, objs))


def vectors(scenario="nsiska-both-dmode-2node"):
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "data", "nsiska-vectors", "gist-messages.tsv")
    out = {}
    with open(path) as f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            if len(c) >= 9 and c[0] == scenario:
                out[int(c[1])] = (float(c[7]), bytes.fromhex(c[8]))
    return out


def selftest():
    v = vectors()
    q = v[50][1]
    _, _, _, go = parse_gist(q)
    sid = obj(go, O_SID)
    _, qni_pid, qni = nli_parts(obj(go, O_NLI))
    qcookie = obj(go, O_QCOOKIE)
    _, qnr_pid, qnr = nli_parts(obj(parse_gist(v[51][1])[3], O_NLI))
    rcookie = obj(parse_gist(v[51][1])[3], O_RCOOKIE)
    m = Msgs(sid, qni, qnr, qni_pid, qnr_pid)
    r53 = parse_nslp(obj(parse_gist(v[53][1])[3], O_NSLP), 0)[1]
    _, epoch = struct.unpack("!II", [o for o in r53 if o[0] == N_RSN][0][3])
    rii = struct.unpack("!I", [o for o in r53 if o[0] == N_RII][0][3])[0]
    now = int(v[53][0])
    vl = vlsp_obj(0x00000001000000020000000300000004, 1, 1, 0, 0, 0, 11)
    tear_rii = struct.unpack("!I", [o for o in parse_nslp(obj(parse_gist(v[55][1])[3], O_NSLP), 0)[1] if o[0] == N_RII][0][3])[0]
    built = {
        50: m.query(qcookie),
        51: m.response(qcookie, rcookie),
        52: m.confirm(rcookie),
        53: m.reserve(0, epoch, rii, 125000, vl, "auth%tb4@tm.kit.edu", now + 6000),
        54: m.reserve_response(rii, vl, now),
        55: m.tear(1, epoch, tear_rii),
        56: m.tear_response(tear_rii),
    }
    for i, b in built.items():
        if b == v[i][1]:
            say("EVENT", f"vector #{i}: rebuilt byte for byte ({len(b)} bytes)")
        else:
            diff = next(k for k in range(min(len(b), len(v[i][1])) + 1) if k >= len(b) or k >= len(v[i][1]) or b[k] != v[i][1][k])
            say("ERROR", f"vector #{i}: rebuilt bytes differ from offset {diff} (ours {b[diff:diff+16].hex()}, NSIS-ka {v[i][1][diff:diff+16].hex()})")
    for i in (53, 54):
        r = verify(v[i][1], int(v[i][0]), max_skew=6000)
        say("EVENT" if r == "ok" else "ERROR", f"vector #{i}: HMAC {r}")
    bad = bytearray(v[53][1])
    bad[-1] ^= 1
    r = verify(bytes(bad), now)
    say("EVENT" if r != "ok" else "ERROR", f"vector #53 with one MAC bit flipped: {r}")
    rfc = vectors("nsiska-responder-rfc-hmac-rejected")
    for i, (t, b) in sorted(rfc.items()):
        if parse_gist(b)[0] == G_DATA and hmac_input(b)[1]:
            r = verify(b, int(t))
            say("EVENT" if r != "ok" else "ERROR", f"rfc-hmac-rejected #{i}: refused ({r})")


# ------------------------------------------------------------- network


def open_socket(bind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, GIST_PORT))
    return s


def send(s, pdu, dst, ttl=64, router_alert=False):
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    if router_alert:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([0x94, 0x04, 0, 0]))
    try:
        s.sendto(pdu, dst)
    finally:
        if router_alert:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"")


def recv(s, timeout):
    r, _, _ = select.select([s], [], [], max(0.0, timeout))
    if not r:
        return None
    return s.recvfrom(65535)


def describe_error(objs):
    e = obj(objs, O_ERR)
    return e.hex() if e is not None else "(no error object)"


def check_mri(objs, upstream, what):
    _, _, d = mri_parts(obj(objs, O_MRI))
    if d != upstream:
        say("DIFF", f"{what}: MRI D flag {int(d)}, NSIS-ka sets {int(upstream)} ({'upstream' if upstream else 'downstream'})")


def check_nli_ttl(objs, want, what):
    ttl, _, _ = nli_parts(obj(objs, O_NLI))
    if ttl != want:
        say("DIFF", f"{what}: NLI IP-TTL {ttl}, NSIS-ka writes {want}")


def respond(args):
    s = open_socket(args.bind)
    my_pid = os.urandom(16)
    sessions = {}  # sid -> dict
    deadline = time.time() + args.timeout
    say("EVENT", f"responder listening on {args.bind}:{GIST_PORT} as {args.local}")
    while time.time() < deadline:
        got = recv(s, deadline - time.time())
        if got is None:
            break
        buf, frm = got
        try:
            mtype, hops, flags, objs = parse_gist(buf)
        except ValueError as e:
            say("ERROR", f"undecodable datagram from {frm}: {e}")
            continue
        sid = obj(objs, O_SID)
        if mtype == G_ERROR:
            say("ERROR", f"GIST Error from {frm}: {describe_error(objs)}")
            continue
        st = sessions.get(sid)
        if mtype == G_QUERY:
            src, dst, _ = mri_parts(obj(objs, O_MRI))
            check_mri(objs, False, "Query")
            _, peer_pid, peer_addr = nli_parts(obj(objs, O_NLI))
            check_nli_ttl(objs, 103, "Query")
            qc = obj(objs, O_QCOOKIE)
            if len(qc) != 4:
                say("DIFF", f"Query-Cookie of {len(qc)} bytes, NSIS-ka's is 4")
            if st is None:
                st = sessions[sid] = {"rcookie": os.urandom(28), "resv": None}
            st.update(m=Msgs(sid, src, dst, peer_pid, my_pid), peer=peer_addr)
            send(s, st["m"].response(qc, st["rcookie"]), (peer_addr, frm[1]))
            say("EVENT", f"Query {src} -> {dst} from {frm[0]}:{frm[1]} (hops {hops}), Response sent")
        elif st is None:
            say("ERROR", f"GIST type {mtype} from {frm} for an unknown session {sid.hex() if sid else '-'}")
        elif mtype == G_CONFIRM:
            check_mri(objs, False, "Confirm")
            if obj(objs, O_RCOOKIE) != st["rcookie"]:
                say("ERROR", "Confirm does not echo our Responder-Cookie")
            else:
                say("EVENT", "Confirm with our Responder-Cookie")
        elif mtype == G_DATA:
            check_mri(objs, False, "Data (RESERVE)")
            handle_reserve(s, st, buf, objs, args)
            if st.get("torn") and args.exit_after_tear:
                break
        else:
            say("ERROR", f"unexpected GIST type {mtype} from {frm}")
    s.close()


def handle_reserve(s, st, buf, objs, args):
    data = obj(objs, O_NSLP)
    word, nobjs = parse_nslp(data, 0)
    if word >> 24 != N_RESERVE:
        say("ERROR", f"QoS NSLP message type {word >> 24} where a RESERVE was expected")
        return
    get = lambda t: next((v for ot, _, _, v in nobjs if ot == t), None)
    rii = get(N_RII)
    rii = struct.unpack("!I", rii)[0] if rii else None
    rsn, epoch = struct.unpack("!II", get(N_RSN))
    now = int(time.time())
    m, peer = st["m"], (st["peer"], GIST_PORT)
    verdict = verify(buf, now, max_skew=args.max_skew)
    if word & TEAR:
        extra = [t for t, _, _, _ in nobjs if t not in (N_RSN, N_RII)]
        if extra:
            say("DIFF", f"tearing RESERVE carries objects {[hex(t) for t in extra]}; NSIS-ka's has RSN and RII only")
        if verdict not in ("ok", "unsigned"):
            say("ERROR", f"tearing RESERVE: {verdict}: dropped (NSIS-ka drops it silently)")
            return
        say("EVENT", f"TEAR rsn {rsn} ({verdict}), RII {rii}")
        if rii is not None:
            send(s, m.tear_response(rii), peer)
            say("EVENT", "tear RESPONSE sent")
        st["torn"] = True
        say("DOWN", "torn down by the initiator")
        return
    if verdict == "unsigned":
        say("DIFF", "RESERVE without SESSION_AUTH (NSIS-ka accepts it; vlsp's peer signs)")
    elif verdict != "ok":
        say("ERROR", f"RESERVE refused: {verdict}: dropped silently, as NSIS-ka does")
        return
    if first_reserve(st):
        reserve_diffs(nobjs)
    vl = next((data[a:e] for t, a, e, _ in nobjs if t == N_VLSP), None)
    if vl is None:
        say("ERROR", "RESERVE without a VLSP object")
        return
    for t, a, e, v in nobjs:
        if t == N_AUTH:
            for x, sub, val in parse_attrs(v):
                if x == A_START:
                    skew = struct.unpack("!Q", val[:8])[0] - now
                    say("EVENT", f"RESERVE START_TIME is now {skew:+d} s (NSIS-ka's client writes +6000)")
    first = st["resv"] is None
    st["resv"] = (rsn, epoch)
    send(s, m.reserve_response(rii, vl, now), peer)
    vlink = struct.unpack("!Q", vl[4 + 64 : 4 + 72])[0]
    tunnel = struct.unpack("!I", vl[-4:])[0]
    what = "RESERVE" if first else "refreshing RESERVE"
    say("EVENT", f"{what} rsn {rsn} verified ({verdict}), vlink {vlink} tunnel type {tunnel:#x}; signed RESPONSE sent")
    if first:
        say("UP", f"vlink {vlink}")


def initiate(args):
    s = open_socket(args.bind)
    sid, my_pid, qc = os.urandom(16), os.urandom(16), os.urandom(4)
    m = Msgs(sid, args.local, args.peer, my_pid, b"")
    epoch = int(time.time()) - 1
    ok = handshake(s, m, qc, args)
    if ok:
        ok = reserve(s, m, epoch, args)
    if ok:
        if args.hold is None:
            say("EVENT", "waiting for a line on stdin to tear down")
            sys.stdin.readline()
        else:
            time.sleep(args.hold)
        rii = struct.unpack("!I", os.urandom(4))[0]
        send(s, m.tear(1, epoch, rii), (m.peer_nli, GIST_PORT), ttl=103)
        say("EVENT", f"unsigned tearing RESERVE sent (RSN 1, RII {rii})")
        ans = await_response(s, m, 3.0, rii)
        if ans is None:
            say("EVENT", "no RESPONSE to the TEAR within 3 s (NSIS-ka answers a TEAR with an RII)")
        else:
            word, nobjs, _ = ans
            info = next((v for t, _, _, v in nobjs if t == N_INFO), None)
            if info is None or (info[2] >> 4, info[1]) != (2, 2):
                say("ERROR", f"TEAR answered with INFO_SPEC {info[:4].hex() if info else None}, not success/teardown (2/2)")
            else:
                say("EVENT", "TEAR answered: tear down successful")
        say("DOWN", "tear sent")
    s.close()


def handshake(s, m, qc, args):
    query = m.query(qc)
    for attempt in range(args.retries):
        send(s, query, (args.peer, GIST_PORT), ttl=103, router_alert=True)
        end = time.time() + 1.0 * (attempt + 1)
        while time.time() < end:
            got = recv(s, end - time.time())
            if got is None:
                break
            buf, frm = got
            mtype, _, flags, objs = parse_gist(buf)
            if obj(objs, O_SID) != m.sid:
                continue
            if mtype == G_ERROR:
                say("ERROR", f"GIST Error from {frm} to our Query: {describe_error(objs)}")
                return False
            if mtype != G_RESPONSE:
                continue
            check_mri(objs, True, "Response")
            check_nli_ttl(objs, 0, "Response")
            if obj(objs, O_QCOOKIE) != qc:
                say("ERROR", "Response does not echo our Query-Cookie")
                return False
            rc = obj(objs, O_RCOOKIE)
            if rc is None:
                say("ERROR", "Response without a Responder-Cookie (NSIS-ka asks for a Confirm)")
                return False
            if len(rc) != 28:
                say("DIFF", f"Responder-Cookie of {len(rc)} bytes, NSIS-ka's is 28")
            _, pid, addr = nli_parts(obj(objs, O_NLI))
            m.qnr_pid, m.peer_nli = pid, addr
            say("EVENT", f"Response from {frm[0]}:{frm[1]} (R={int(bool(flags & F_R))}), Confirm sent")
            send(s, m.confirm(rc), (addr, GIST_PORT), ttl=103)
            return True
    say("ERROR", f"no GIST Response to {args.retries} Queries to {args.peer}")
    return False


def await_response(s, m, timeout, rii):
    end = time.time() + timeout
    while time.time() < end:
        got = recv(s, end - time.time())
        if got is None:
            return None
        buf, frm = got
        mtype, _, _, objs = parse_gist(buf)
        if obj(objs, O_SID) != m.sid:
            continue
        if mtype == G_ERROR:
            say("ERROR", f"GIST Error from {frm}: {describe_error(objs)}")
            continue
        if mtype != G_DATA:
            say("EVENT", f"GIST type {mtype} from {frm} ignored")
            continue
        data = obj(objs, O_NSLP)
        word, nobjs = parse_nslp(data, 0)
        if word >> 24 != N_RESPONSE:
            say("EVENT", f"QoS NSLP message type {word >> 24} ignored")
            continue
        got_rii = next((struct.unpack("!I", v)[0] for t, _, _, v in nobjs if t == N_RII), None)
        if got_rii != rii:
            say("EVENT", f"RESPONSE for RII {got_rii} ignored (waiting for {rii})")
            continue
        check_mri(objs, True, "Data (RESPONSE)")
        return word, nobjs, buf
    return None


def reserve(s, m, epoch, args):
    rii = struct.unpack("!I", os.urandom(4))[0]
    vl = vlsp_obj(args.vnet, args.src_vnode, args.dst_vnode, args.src_vif, args.dst_vif, args.vlink, args.tunnel)
    start = int(time.time()) + args.start_skew
    pdu = m.reserve(0, epoch, rii, args.rate, vl, args.entity, start)
    wait = 2.0
    for _ in range(args.retries):
        send(s, pdu, (m.peer_nli, GIST_PORT), ttl=103)
        say("EVENT", f"signed RESERVE sent (vlink {args.vlink}, START_TIME now{args.start_skew:+d} s, RII {rii})")
        ans = await_response(s, m, wait, rii)
        wait *= 2
        if ans is None:
            continue
        word, nobjs, buf = ans
        info = next((v for t, _, _, v in nobjs if t == N_INFO), None)
        cls, code = (info[2] >> 4, info[1]) if info else (None, None)
        text = info[4 + 4 * info[3] :].rstrip(b"\0").decode(errors="replace") if info else ""
        if (cls, code) != (2, 1):
            say("ERROR", f"RESPONSE with INFO_SPEC class {cls} code {code}: {text!r}")
            return False
        echoed = next((buf_v for t, _, _, buf_v in nobjs if t == N_VLSP), None)
        if echoed != vl[4:]:
            say("DIFF" if echoed is None else "ERROR", "RESPONSE does not echo our VLSP object")
        verdict = verify(buf, int(time.time()), max_skew=args.max_skew)
        if verdict != "ok":
            say("ERROR", f"RESPONSE's SESSION_AUTH: {verdict}")
            return False
        auth_diffs(nobjs, m)
        say("EVENT", f"RESPONSE success ({text!r}), HMAC verified")
        say("UP", f"vlink {args.vlink}")
        return True
    say("ERROR", f"no RESPONSE to the RESERVE after {args.retries} tries")
    return False


def first_reserve(st):
    return st.get("resv") is None


def reserve_diffs(nobjs):
    """What vlsp's RESERVE has that NSIS-ka's client's (#53) has not, or differently."""
    types = [t for t, _, _, _ in nobjs]
    want = [N_RSN, N_RII, N_PC, N_QSPEC, N_VLSP, N_AUTH]
    if types != want:
        say("DIFF", f"RESERVE objects {[hex(t) for t in types]}; NSIS-ka's client sends {[hex(t) for t in want]}")
    for t, _, _, v in nobjs:
        if t == N_QSPEC and len(v) != len(qspec(1.0)):
            say("DIFF", f"RESERVE QSPEC of {len(v)} bytes ({v.hex()}); NSIS-ka's is {len(qspec(1.0))} (TMOD-1 without MPS, Admission Priority)")
        if t == N_PC and v != struct.pack("!I", 0x400):
            say("DIFF", f"PACKET_CLASSIFIER {v.hex()}; NSIS-ka's is 00000400")
        if t == N_AUTH:
            kinds = [(x, sub) for x, sub, _ in parse_attrs(v)]
            want_a = [(1, 3), (1, 10), (2, 1), (3, 1), (4, 1), (6, 0), (7, 0)]
            if kinds != want_a:
                say("DIFF", f"RESERVE SESSION_AUTH attributes {kinds}; NSIS-ka's client's are {want_a}")


def auth_diffs(nobjs, m):
    """What vlsp's RESPONSE SESSION_AUTH has that NSIS-ka's (#54) has not, or differently."""
    for t, _, _, v in nobjs:
        if t != N_AUTH:
            continue
        attrs = parse_attrs(v)
        kinds = [(x, sub) for x, sub, _ in attrs]
        want = [(1, 10), (2, 1), (4, 1), (6, 0), (7, 0)]
        if kinds != want:
            say("DIFF", f"RESPONSE SESSION_AUTH attributes {kinds}; NSIS-ka's are {want}")
        for x, sub, val in attrs:
            if x == A_SRC and sub == 1 and socket.inet_ntoa(val[:4]) != m.qnr:
                say("DIFF", f"RESPONSE SOURCE_ADDR {socket.inet_ntoa(val[:4])}; NSIS-ka names the responder {m.qnr}")
            if x == A_LIST:
                cnt = struct.unpack("!H", val[:2])[0]
                types = [struct.unpack("!H", val[2 + 2 * i : 4 + 2 * i])[0] for i in range(cnt)]
                if types != [N_RII, N_VLSP]:
                    say("DIFF", f"RESPONSE NSLP_OBJECT_LIST {[hex(x) for x in types]}; NSIS-ka's is ['0x1', '0xfe']")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest")
    r = sub.add_parser("respond")
    r.add_argument("--local", required=True, help="this node's address (NLI, INFO_SPEC, SOURCE_ADDR)")
    r.add_argument("--bind", default="0.0.0.0")
    r.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    r.add_argument("--max-skew", type=int, default=None, help="refuse START_TIME further ahead (NSIS-ka: no check)")
    r.add_argument("--exit-after-tear", action="store_true")
    i = sub.add_parser("initiate")
    i.add_argument("--local", required=True, help="MRI source and NLI address")
    i.add_argument("--peer", required=True, help="MRI destination: where the Query goes")
    i.add_argument("--bind", default="0.0.0.0")
    i.add_argument("--vnet", type=lambda x: int(x, 0), default=0x00000001000000020000000300000004)
    i.add_argument("--src-vnode", type=lambda x: int(x, 0), default=1)
    i.add_argument("--dst-vnode", type=lambda x: int(x, 0), default=2)
    i.add_argument("--src-vif", type=lambda x: int(x, 0), default=0)
    i.add_argument("--dst-vif", type=lambda x: int(x, 0), default=0)
    i.add_argument("--vlink", type=lambda x: int(x, 0), default=0x1234)
    i.add_argument("--tunnel", type=lambda x: int(x, 0), default=11, help="VLSP tunnel type (NSIS-ka: 11 IP-in-IP; vlsp's VXLAN: 0xf0)")
    i.add_argument("--rate", type=float, default=125000.0, help="TMOD-1 r and p, bytes/s")
    i.add_argument("--entity", default="auth%tb4@tm.kit.edu")
    i.add_argument("--start-skew", type=int, default=6000, help="START_TIME = now + this (NSIS-ka: 6000)")
    i.add_argument("--max-skew", type=int, default=None)
    i.add_argument("--retries", type=int, default=5)
    i.add_argument("--hold", type=float, default=None, help="tear after this many seconds instead of a stdin line")
    a = p.parse_args()
    {"selftest": lambda: selftest(), "respond": lambda: respond(a), "initiate": lambda: initiate(a)}[a.cmd]()
    sys.exit(1 if ERRORS else 0)


if __name__ == "__main__":
    main()

//! GIST C-mode transport (RFC 5971 §5.7): TCP messaging associations in the
//! node's namespace. On TCP, GIST messages follow each other without a
//! magic number; the Message Length of each common header frames them.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};

/// GIST common header length; its bytes 2–3 count the 32-bit words after it.
const HEADER: usize = 8;

/// Listens for messaging associations on `port` of every address of the
/// namespace. Call it on the node's thread, inside its namespace.
pub async fn listen(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
        .await
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("GIST MA listener on TCP port {port}: {e}"),
            )
        })
}

/// Opens a messaging association to `remote`; small GIST messages go out
/// at once (no Nagle delay).
pub async fn connect(remote: SocketAddrV4) -> io::Result<TcpStream> {
    let s = TcpStream::connect(remote)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("GIST MA to {remote}: {e}")))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The IPv4 address of one end of `s` (`local` or the peer).
pub fn v4(addr: io::Result<std::net::SocketAddr>) -> io::Result<SocketAddrV4> {
    match addr? {
        std::net::SocketAddr::V4(a) => Ok(a),
        std::net::SocketAddr::V6(a) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("GIST MA over IPv6 ({a}): this testbed signals over IPv4"),
        )),
    }
}

/// Reads the next GIST message (header and body) from an MA; `None` when
/// the peer closed it between messages.
pub async fn read_message(r: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let mut h = [0u8; HEADER];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let words = u16::from_be_bytes([h[2], h[3]]) as usize;
    let mut msg = vec![0u8; HEADER + 4 * words];
    msg[..HEADER].copy_from_slice(&h);
    r.read_exact(&mut msg[HEADER..]).await?;
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn messages_are_framed_by_their_length_field() {
        // Two messages back to back, then EOF: a Data of 2 words, a header-only one.
        let mut bytes = vec![1, 1, 0, 2, 0, 1, 3, 0x80, 9, 9, 9, 9, 8, 8, 8, 8];
        bytes.extend_from_slice(&[1, 1, 0, 0, 0, 1, 5, 0]);
        let mut r = &bytes[..];
        assert_eq!(read_message(&mut r).await.unwrap().unwrap(), bytes[..16]);
        assert_eq!(read_message(&mut r).await.unwrap().unwrap(), bytes[16..]);
        assert_eq!(read_message(&mut r).await.unwrap(), None);
        // A message cut short is an error, not a clean close.
        let mut cut = &bytes[..10];
        assert!(read_message(&mut cut).await.is_err());
    }
}

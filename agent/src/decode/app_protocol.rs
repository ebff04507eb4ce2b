//! Application protocols recognised from a flow's first payload bytes, and the server name of
//! a TLS ClientHello.
//!
//! Only what a few fixed bytes prove: this is a label for detectors (SSH brute force, mining
//! pools on odd ports, TLS names), not a protocol parser. Every read is bounds-checked and
//! nothing allocates; the SNI is borrowed from the packet.

/// Most payload bytes searched for a Stratum method name: its JSON-RPC line is short.
const STRATUM_SCAN_BYTES: usize = 512;

/// An application protocol recognised from payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppProtocol {
    /// SSH: the version banner starts `SSH-` (RFC 4253 §4.2).
    Ssh,
    /// TLS: a handshake record (content type 22, version 3.x).
    Tls,
    /// HTTP/1: a request line with a common method, or a status line.
    Http,
    /// Stratum mining JSON-RPC (`mining.subscribe`, `mining.authorize`, or `"login"`).
    Stratum,
}

impl AppProtocol {
    /// The label written into `FlowSummary.app_protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::Tls => "tls",
            Self::Http => "http",
            Self::Stratum => "stratum",
        }
    }
}

const HTTP_PREFIXES: [&[u8]; 7] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"HTTP/1.",
];

const STRATUM_MARKERS: [&[u8]; 3] = [b"mining.subscribe", b"mining.authorize", b"\"login\""];

/// The protocol `payload` (the first bytes one side sent) starts, if recognised.
pub fn recognise(payload: &[u8]) -> Option<AppProtocol> {
    if payload.starts_with(b"SSH-") {
        return Some(AppProtocol::Ssh);
    }
    if is_tls_handshake(payload) {
        return Some(AppProtocol::Tls);
    }
    if HTTP_PREFIXES.iter().any(|p| payload.starts_with(p)) {
        return Some(AppProtocol::Http);
    }
    if payload.first() == Some(&b'{') {
        let head = payload.get(..STRATUM_SCAN_BYTES).unwrap_or(payload);
        if STRATUM_MARKERS.iter().any(|m| contains(head, m)) {
            return Some(AppProtocol::Stratum);
        }
    }
    None
}

fn is_tls_handshake(payload: &[u8]) -> bool {
    matches!(payload, [22, 3, minor, ..] if *minor <= 4)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The server name (SNI, RFC 6066 §3) of a TLS ClientHello that starts `payload`, if the
/// whole extension is in this packet and the name is printable ASCII.
pub fn tls_server_name(payload: &[u8]) -> Option<&str> {
    // Record header: type 22, version, length; then handshake type 1 (ClientHello), length.
    let [22, 3, _, _, _, 1, _, _, _, body @ ..] = payload else {
        return None;
    };
    let mut r = Reader(body);
    r.skip(2 + 32)?; // client version, random
    let session_id = r.u8()?;
    r.skip(usize::from(session_id))?;
    let suites = r.u16()?;
    r.skip(usize::from(suites))?;
    let compression = r.u8()?;
    r.skip(usize::from(compression))?;
    let ext_len = r.u16()?;
    let mut ext = Reader(r.take(usize::from(ext_len)).unwrap_or(r.0));
    while let (Some(kind), Some(len)) = (ext.u16(), ext.u16()) {
        let data = ext.take(usize::from(len))?;
        if kind != 0 {
            continue;
        }
        // server_name_list: length, then entries of (type, length, name).
        let mut list = Reader(data);
        let list_len = list.u16()?;
        let mut entries = Reader(list.take(usize::from(list_len))?);
        while let Some(name_type) = entries.u8() {
            let name_len = entries.u16()?;
            let name = entries.take(usize::from(name_len))?;
            if name_type == 0 {
                let valid = !name.is_empty()
                    && name
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                return valid.then(|| std::str::from_utf8(name).ok()).flatten();
            }
        }
        return None;
    }
    None
}

/// A cursor over borrowed bytes whose reads fail instead of panicking when bytes run out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn u16(&mut self) -> Option<u16> {
        let (pair, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*pair))
    }
}

/// A minimal TLS ClientHello carrying `name` as its SNI, for tests here and downstream.
#[cfg(test)]
pub(crate) fn client_hello(name: &str) -> Vec<u8> {
    let name = name.as_bytes();
    let name_len = u16::try_from(name.len()).expect("short name");
    let mut sni = Vec::new();
    sni.extend_from_slice(&(name_len + 3).to_be_bytes()); // list length
    sni.push(0);
    sni.extend_from_slice(&name_len.to_be_bytes());
    sni.extend_from_slice(name);
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&u16::try_from(sni.len()).expect("short").to_be_bytes());
    ext.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&u16::try_from(ext.len()).expect("short").to_be_bytes());
    body.extend_from_slice(&ext);
    let hs_len = u32::try_from(body.len()).expect("short").to_be_bytes();
    let mut hs = vec![1, hs_len[1], hs_len[2], hs_len[3]];
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&u16::try_from(hs.len()).expect("short").to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_and_requests_are_recognised_by_their_first_bytes() {
        assert_eq!(
            recognise(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Some(AppProtocol::Ssh)
        );
        assert_eq!(recognise(b"GET / HTTP/1.1\r\n"), Some(AppProtocol::Http));
        assert_eq!(
            recognise(br#"{"id":1,"method":"mining.subscribe","params":[]}"#),
            Some(AppProtocol::Stratum)
        );
        assert_eq!(
            recognise(br#"{"id":1,"method":"login","params":{}}"#),
            Some(AppProtocol::Stratum)
        );
        assert_eq!(
            recognise(&client_hello("example.com")),
            Some(AppProtocol::Tls)
        );
    }

    #[test]
    fn other_payloads_are_not_labelled() {
        assert_eq!(recognise(b""), None);
        assert_eq!(recognise(b"SSH"), None);
        assert_eq!(recognise(br#"{"method":"eth_call"}"#), None);
        assert_eq!(recognise(&[22, 2, 0]), None);
        assert_eq!(recognise(b"\x00\x01binary"), None);
    }

    #[test]
    fn client_hello_gives_its_server_name() {
        assert_eq!(
            tls_server_name(&client_hello("pool.example.org")),
            Some("pool.example.org")
        );
    }

    #[test]
    fn truncated_or_odd_client_hellos_give_no_name_and_never_panic() {
        let hello = client_hello("pool.example.org");
        for cut in 0..hello.len() {
            assert_eq!(tls_server_name(&hello[..cut]), None, "cut at {cut}");
        }
        assert_eq!(tls_server_name(&client_hello("bad name\u{1}")), None);
        let mut server_hello = hello.clone();
        server_hello[5] = 2;
        assert_eq!(tls_server_name(&server_hello), None);
    }
}

//! The principal of a TLS client certificate, as Kafka names it with its
//! default `ssl.principal.mapping.rules`: `User:` and the subject's
//! distinguished name in RFC 2253 form, as Java's
//! `X500Principal.getName()` prints it (`CN=alice,OU=eng,O=corp,C=SE`:
//! the subject's RDNs last first, keywords for the RFC 2253 attributes
//! with their values as text (`,=+<>#;"\` and leading and trailing
//! spaces escaped), `OID=#hex` of the DER value for any other attribute,
//! and `KEYWORD=#hex` for a value of a type Java does not print as text).
//!
//! Pure: the certificate's DER bytes in, a string out. The certificate
//! was verified against the client CA before it gets here, but it is
//! parsed as hostile input all the same: every length is checked, and a
//! certificate this cannot read is an error, never a panic.

/// Why a certificate's subject could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectError(pub &'static str);

impl std::fmt::Display for SubjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read the certificate's subject: {}", self.0)
    }
}

impl std::error::Error for SubjectError {}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT, context-specific, constructed

/// The subject of an X.509 certificate (DER), in RFC 2253 form.
pub fn subject_name(certificate: &[u8]) -> Result<String, SubjectError> {
    let mut outer = Der(certificate);
    let mut cert = Der(outer.expect(SEQUENCE, "not a certificate")?);
    let mut tbs = Der(cert.expect(SEQUENCE, "no tbsCertificate")?);
    if tbs.peek() == Some(VERSION) {
        tbs.any()?;
    }
    tbs.expect(INTEGER, "no serial number")?;
    tbs.expect(SEQUENCE, "no signature algorithm")?;
    tbs.expect(SEQUENCE, "no issuer")?;
    tbs.expect(SEQUENCE, "no validity")?;
    let subject = tbs.expect(SEQUENCE, "no subject")?;
    name(subject)
}

/// A `Name` (a SEQUENCE OF RDN, without its tag) in RFC 2253 form.
fn name(rdns: &[u8]) -> Result<String, SubjectError> {
    let mut rdns = Der(rdns);
    let mut printed = Vec::new();
    while !rdns.is_empty() {
        let mut set = Der(rdns.expect(SET, "an RDN is not a SET")?);
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let mut atv = Der(set.expect(SEQUENCE, "an attribute is not a SEQUENCE")?);
            let oid = atv.expect(OID, "an attribute has no type")?;
            let (tag, value, whole) = atv.any()?;
            attributes.push(attribute(oid, tag, value, whole));
        }
        printed.push(attributes.join("+"));
    }
    printed.reverse();
    Ok(printed.join(","))
}

/// `KEYWORD=value` for the attribute types RFC 2253 names with a value
/// of a string type, else `KEYWORD=#hex` or `OID=#hex` of the whole DER
/// value, as Java prints them.
fn attribute(oid: &[u8], tag: u8, value: &[u8], whole: &[u8]) -> String {
    let keyword = match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => Some("DC"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some("UID"),
        _ => None,
    };
    // RFC 2253 §2.4: a type in dotted form has its value in hex, always.
    match (keyword, text(tag, value)) {
        (Some(keyword), Some(text)) => format!("{keyword}={}", escape(&text)),
        (keyword, _) => {
            let name = keyword.map_or_else(|| dotted(oid), str::to_string);
            let hex: String = whole.iter().map(|b| format!("{b:02x}")).collect();
            format!("{name}=#{hex}")
        }
    }
}

/// The text of the string types Java prints as text; `None` for any
/// other type (UniversalString included), printed as hex.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
        // TeletexString and GeneralString, read as Latin-1
        0x14 | 0x1b => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16, big-endian
        0x1e if value.len().is_multiple_of(2) => {
            let units = value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        _ => None,
    }
}

/// Java's RFC 2253 escaping: `,=+<>#;"\` anywhere with a backslash, NUL
/// as `\00`, and every leading and trailing space or carriage return.
fn escape(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = chars.iter().take_while(|c| blank(c)).count();
    let trail = chars.len() - chars.iter().rev().take_while(|c| blank(c)).count();
    let mut out = String::with_capacity(value.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '\0' {
            out.push_str("\\00");
            continue;
        }
        let edge = (i < lead || i >= trail) && blank(&c);
        if edge || ",=+<>#;\"\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An OID's DER contents in dotted form (`1.2.840.113549.1.9.1`).
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value.saturating_mul(128) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.extend([first, value - first * 40]);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// A reader of DER TLVs over a slice.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element's contents, which must have tag `tag`.
    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], SubjectError> {
        match self.any()? {
            (t, contents, _) if t == tag => Ok(contents),
            _ => Err(SubjectError(what)),
        }
    }

    /// The next element: its tag, its contents and its whole encoding.
    fn any(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), SubjectError> {
        let short = SubjectError("truncated");
        let (&tag, rest) = self.0.split_first().ok_or(short.clone())?;
        if tag & 0x1f == 0x1f {
            return Err(SubjectError("a multi-byte tag"));
        }
        let (&first, rest) = rest.split_first().ok_or(short.clone())?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(SubjectError("a bad length"));
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(short);
        }
        let header = self.0.len() - rest.len();
        let whole = &self.0[..header + len];
        let contents = &rest[..len];
        self.0 = &rest[len..];
        Ok((tag, contents, whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of one element.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn atv(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        tlv(SEQUENCE, &[tlv(OID, oid), tlv(tag, value)].concat())
    }

    /// A certificate skeleton around `subject` (the RDN SETs): enough
    /// structure for [`subject_name`], nothing a verifier would accept.
    fn cert(rdns: &[Vec<u8>]) -> Vec<u8> {
        let tbs = [
            tlv(VERSION, &tlv(INTEGER, &[2])),
            tlv(INTEGER, &[0x01, 0x02]),
            tlv(SEQUENCE, &tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])),
            tlv(SEQUENCE, &tlv(SET, &atv(&[0x55, 4, 3], 0x0c, b"issuer"))),
            tlv(SEQUENCE, &[]),
            tlv(SEQUENCE, &rdns.concat()),
        ]
        .concat();
        tlv(SEQUENCE, &[tlv(SEQUENCE, &tbs), tlv(SEQUENCE, &[]), tlv(0x03, &[0])].concat())
    }

    #[test]
    fn the_subject_prints_last_rdn_first_as_java_does() {
        let c = cert(&[
            tlv(SET, &atv(&[0x55, 4, 6], 0x13, b"SE")),
            tlv(SET, &atv(&[0x55, 4, 10], 0x0c, b"Corp, Inc.")),
            tlv(SET, &atv(&[0x55, 4, 11], 0x0c, b"eng")),
            tlv(SET, &atv(&[0x55, 4, 3], 0x0c, b"alice")),
        ]);
        assert_eq!(subject_name(&c).unwrap(), r"CN=alice,OU=eng,O=Corp\, Inc.,C=SE");
    }

    #[test]
    fn unnamed_attributes_print_as_oids_other_types_as_hex_and_rdns_join_with_plus() {
        let email = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
        let c = cert(&[tlv(
            SET,
            &[atv(&[0x55, 4, 3], 0x13, b"bob"), atv(&email, 0x16, b"b@x")].concat(),
        )]);
        assert_eq!(subject_name(&c).unwrap(), "CN=bob+1.2.840.113549.1.9.1=#1603624078");
        let hex = cert(&[tlv(SET, &atv(&[0x55, 4, 3], 0x1c, &[0, 0, 0, b'z']))]);
        assert_eq!(subject_name(&hex).unwrap(), "CN=#1c040000007a");
    }

    #[test]
    fn values_are_escaped_and_decoded_from_every_string_type() {
        assert_eq!(escape(" #a+b;c\"<>\\ "), r#"\ \#a\+b\;c\"\<\>\\\ "#);
        assert_eq!(escape("  a=b#1  "), r"\ \ a\=b\#1\ \ ");
        assert_eq!(escape("a\0b"), r"a\00b");
        assert_eq!(escape("   "), r"\ \ \ ");
        assert_eq!(text(0x1e, &[0, b'h', 0x00, 0xe9]).as_deref(), Some("hé"));
        assert_eq!(text(0x1c, &[0, 0, 0, b'z']), None, "UniversalString is hex in Java");
        assert_eq!(text(0x14, &[0xe9]).as_deref(), Some("é"));
        assert_eq!(text(0x1b, b"g").as_deref(), Some("g"));
        assert_eq!(text(0x02, &[1]), None);
        assert_eq!(
            dotted(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]),
            "0.9.2342.19200300.100.1.25"
        );
    }

    #[test]
    fn every_truncation_of_a_certificate_is_an_error_not_a_panic() {
        let c = cert(&[tlv(SET, &atv(&[0x55, 4, 3], 0x0c, &[b'x'; 200]))]);
        assert!(subject_name(&c).is_ok());
        for n in 0..c.len() {
            assert!(subject_name(&c[..n]).is_err(), "{n}");
        }
        for bad in [&[0x30, 0x85, 1, 1, 1, 1, 1][..], &[0x1f, 0][..], &[0x30, 0x80][..]] {
            assert!(subject_name(bad).is_err());
        }
    }
}

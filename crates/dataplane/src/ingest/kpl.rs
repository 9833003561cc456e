//! KPL record aggregation: `F3 89 9A C2` + protobuf `AggregatedRecord` +
//! MD5 of the protobuf. The Kafka->Kinesis connector may or may not
//! aggregate, so every Kinesis record is checked; a plain record passes
//! through untouched.
//!
//! Owns: de-aggregation (with the digest and every index checked) and, for
//! tests and `datagen`, aggregation. Must not: flatten or decode user data.

use md5::{Digest, Md5};

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// One user record inside an aggregated Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    pub partition_key: &'a str,
    pub data: &'a [u8],
}

/// Why an aggregated record was rejected (it goes to the dead letters whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KplError {
    BadDigest,
    Malformed(&'static str),
}

impl std::fmt::Display for KplError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KplError::BadDigest => write!(f, "KPL aggregated record: MD5 digest does not match"),
            KplError::Malformed(what) => {
                write!(f, "KPL aggregated record: malformed protobuf ({what})")
            }
        }
    }
}

/// The user records of `data`, or None when it is not aggregated.
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<UserRecord<'_>>>, KplError> {
    let Some(rest) = data.strip_prefix(&MAGIC) else {
        return Ok(None);
    };
    if rest.len() < 16 {
        return Err(KplError::Malformed("shorter than its digest"));
    }
    let (message, digest) = rest.split_at(rest.len() - 16);
    if Md5::digest(message).as_slice() != digest {
        return Err(KplError::BadDigest);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut raw_records: Vec<&[u8]> = Vec::new();
    let mut r = Reader(message);
    while !r.0.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => keys.push(
                std::str::from_utf8(r.bytes()?)
                    .map_err(|_| KplError::Malformed("partition key is not UTF-8"))?,
            ),
            (3, 2) => raw_records.push(r.bytes()?),
            _ => r.skip(wire)?,
        }
    }
    let mut out = Vec::with_capacity(raw_records.len());
    for raw in raw_records {
        let (mut pk_index, mut payload) = (None, None);
        let mut r = Reader(raw);
        while !r.0.is_empty() {
            match r.key()? {
                (1, 0) => pk_index = Some(r.varint()?),
                (3, 2) => payload = Some(r.bytes()?),
                (_, wire) => r.skip(wire)?,
            }
        }
        let pk = pk_index.ok_or(KplError::Malformed("record without partition_key_index"))?;
        let partition_key = usize::try_from(pk)
            .ok()
            .and_then(|i| keys.get(i))
            .ok_or(KplError::Malformed("partition_key_index out of range"))?;
        out.push(UserRecord {
            partition_key,
            data: payload.ok_or(KplError::Malformed("record without data"))?,
        });
    }
    Ok(Some(out))
}

/// Aggregate user records as the KPL does (one partition-key table entry per distinct key).
pub fn aggregate(records: &[UserRecord<'_>]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut message = Vec::new();
    for r in records {
        if !keys.contains(&r.partition_key) {
            keys.push(r.partition_key);
        }
    }
    for k in &keys {
        put_bytes(&mut message, 1, k.as_bytes());
    }
    for r in records {
        let mut inner = Vec::new();
        put_key(&mut inner, 1, 0);
        put_varint(
            &mut inner,
            keys.iter()
                .position(|k| *k == r.partition_key)
                .expect("collected above") as u64,
        );
        put_bytes(&mut inner, 3, r.data);
        put_bytes(&mut message, 3, &inner);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, field << 3 | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protobuf wire-format reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, KplError> {
        let mut v = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        Err(KplError::Malformed("truncated varint"))
    }

    fn key(&mut self) -> Result<(u64, u64), KplError> {
        let k = self.varint()?;
        Ok((k >> 3, k & 7))
    }

    fn bytes(&mut self) -> Result<&'a [u8], KplError> {
        let len =
            usize::try_from(self.varint()?).map_err(|_| KplError::Malformed("length overflow"))?;
        if len > self.0.len() {
            return Err(KplError::Malformed("length past the end"));
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(b)
    }

    fn skip(&mut self, wire: u64) -> Result<(), KplError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if self.0.len() < n {
                    return Err(KplError::Malformed("truncated fixed field"));
                }
                self.0 = &self.0[n..];
                Ok(())
            }
            2 => self.bytes().map(|_| ()),
            _ => Err(KplError::Malformed("unknown wire type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<UserRecord<'static>> {
        vec![
            UserRecord {
                partition_key: "a",
                data: br#"{"orderid":1}"#,
            },
            UserRecord {
                partition_key: "b",
                data: br#"{"orderid":2}"#,
            },
            UserRecord {
                partition_key: "a",
                data: b"",
            },
        ]
    }

    #[test]
    fn roundtrip_and_plain_records() {
        let agg = aggregate(&sample());
        assert_eq!(deaggregate(&agg).unwrap().unwrap(), sample());
        assert_eq!(
            deaggregate(br#"{"orderid":1}"#).unwrap(),
            None,
            "not aggregated: untouched"
        );
    }

    #[test]
    fn corruption_is_detected() {
        let mut agg = aggregate(&sample());
        let n = agg.len();
        agg[n - 1] ^= 1;
        assert_eq!(deaggregate(&agg), Err(KplError::BadDigest));
        // A well-formed digest over a broken message: truncated record.
        let mut message = aggregate(&sample())[4..n - 16].to_vec();
        message.truncate(message.len() - 3);
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&message);
        forged.extend_from_slice(&Md5::digest(&message));
        assert!(matches!(deaggregate(&forged), Err(KplError::Malformed(_))));
        // An index past the key table.
        let mut inner = Vec::new();
        put_key(&mut inner, 1, 0);
        put_varint(&mut inner, 7);
        put_bytes(&mut inner, 3, b"x");
        let mut message = Vec::new();
        put_bytes(&mut message, 1, b"k");
        put_bytes(&mut message, 3, &inner);
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&message);
        forged.extend_from_slice(&Md5::digest(&message));
        assert_eq!(
            deaggregate(&forged),
            Err(KplError::Malformed("partition_key_index out of range"))
        );
        assert_eq!(
            deaggregate(&MAGIC),
            Err(KplError::Malformed("shorter than its digest"))
        );
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic() {
        let mut state = 0x1234_5678_9abc_def0_u64;
        for len in 0..2000usize {
            let mut message: Vec<u8> = (0..len % 64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 56) as u8
                })
                .collect();
            let mut data = MAGIC.to_vec();
            data.append(&mut message.clone());
            let _ = deaggregate(&data);
            // With a valid digest, parsing itself is exercised.
            let mut signed = MAGIC.to_vec();
            signed.append(&mut message);
            let digest = Md5::digest(&signed[4..]);
            signed.extend_from_slice(&digest);
            let _ = deaggregate(&signed);
        }
    }
}

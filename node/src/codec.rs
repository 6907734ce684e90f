//! Binary encoding of everything herald-node puts in Raft entries or sends between nodes:
//! bincode 2 in serde mode (compact, fast; the types avoid serde features bincode cannot encode).

use crate::error::Error;

pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Internal(format!("encode: {e}")))
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| Error::Internal(format!("decode: {e}")))
}

//! The gRPC codec of every waymark.v1 service: prost's, with a 1 KiB starting buffer
//! instead of tonic's 8 KiB. Every open stream (each watch, each lease keep-alive)
//! keeps its encode buffer for as long as it is open, so at 10,000 watchers the
//! default buffers alone were about 80 MB per node. A buffer still grows for a larger
//! message.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Starting size of each call's encode and decode buffer.
pub const BUFFER_BYTES: usize = 1024;
/// Encoded bytes a stream writes before yielding to the runtime (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// `tonic_prost::ProstCodec` with smaller buffers (named by `build.rs`'s `codec_path`).
#[derive(Debug)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}

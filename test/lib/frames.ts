// The framing codec lives with the protocol (@bpfleet/proto/src/frames.ts); tests use that one.
export {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameKind,
  TruncatedFrameError,
  encodeFrame,
  frameJson,
  readFrames,
  type Frame,
  type FrameKindValue,
} from '@bpfleet/proto';

// Public API of the transport core: what the gateway and other layers import (test/transport/
// public-surface.test.ts keeps src/gateway from reaching past it).
export type {
  Millis,
  Transmit,
  ConnectionEvent,
  ConnectionStats,
  ConnectionConfig,
  TransportConnection,
} from './types.ts';
export type { RateController, AckSample, LossSample } from './congestion/controller.ts';
export { Connection, CloseCode, type ConnectionOptions } from './connection.ts';
export { defaultConnectionConfig } from './config.ts';
export {
  PROTOCOL_VERSION,
  HEADER_SIZE,
  readHeader,
  newHeader,
  peekRoute,
  type PacketHeader,
  type PacketError,
  type PacketRoute,
} from './packet.ts';
export { decodeFrames, encodeFrame, type Frame, type FrameError, type TransportParams } from './frame.ts';
export { fixedRateController } from './congestion/fixed-rate.ts';
export { modelBasedController } from './congestion/model-based.ts';
export { ForwardingRateController } from './congestion/forwarding.ts';

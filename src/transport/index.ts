// Public API of the transport core: what the gateway, the simulator and the benchmarks import.
// Code outside src/transport imports nothing else from it (biome.jsonc's noRestrictedImports), so
// what the core exposes is written down here and its internals can move freely. Files inside
// src/transport never import this one (it would make import cycles).
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
export { FixedRateController, fixedRateController, type FixedRateOptions } from './congestion/fixed-rate.ts';
export { ModelBasedController, modelBasedController, type ModelBasedOptions } from './congestion/model-based.ts';
export { ForwardingRateController } from './congestion/forwarding.ts';

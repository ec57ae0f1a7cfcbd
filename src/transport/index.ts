// Public API of the transport core.
export type {
  Millis, Transmit, ConnectionEvent, ConnectionStats, ConnectionConfig, TransportConnection,
} from './types.ts';
export type { RateController, AckSample, LossSample } from './congestion/controller.ts';
export { Connection, CloseCode, type ConnectionOptions } from './connection.ts';
export { defaultConnectionConfig } from './config.ts';
export { PROTOCOL_VERSION, HEADER_SIZE, readHeader, newHeader, type PacketHeader, type PacketError } from './packet.ts';
export { decodeFrames, encodeFrame, type Frame, type FrameError, type TransportParams } from './frame.ts';

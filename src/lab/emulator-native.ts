// Native datapath (C, recvmmsg/sendmmsg): not built yet.
import type { EmulatorConfig } from './emulator-config.ts';
import type { EmulatorHandle } from './emulator.ts';

export function nativeEmulatorAvailable(): boolean {
  return false;
}

export async function startNativeEmulator(_config: EmulatorConfig): Promise<EmulatorHandle> {
  throw new Error('native emulator not built');
}

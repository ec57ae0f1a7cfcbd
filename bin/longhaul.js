#!/usr/bin/env node
// Thin shim: Node 24 runs the TypeScript sources natively.
import '../src/cli/main.ts';

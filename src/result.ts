// The outcome of a step that can fail at an edge (parsing a setting, loading a key file, building
// the security layer from a config): a value, or a message for the operator that names what was
// wrong. Errors at the edges are values; exceptions mean bugs.
// Decoders of wire data keep their own result types, whose errors are typed, not text.

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T>(error: string): Result<T> => ({ ok: false, error });

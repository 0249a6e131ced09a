/**
 * Typed errors. Every error origin raises carries a stable `code`, structured `data`
 * and the `caller` that raised it, and survives a wire through `toJSON` / `fromJSON`,
 * so an error raised on a node reaches the REPL intact.
 */

export type ErrorCode =
  | 'E_ARGS'              // a command line is wrong
  | 'E_CONFIG_INVALID'    // image.json or a layer config failed its schema
  | 'E_KEY_EXISTS'        // refusing to overwrite a key or certificate
  | 'E_KEY_MISSING'       // a key or certificate file is not there
  | 'E_CERT_INVALID'      // a certificate lacks origin's role / cluster fields
  | 'E_FRAME_INVALID'     // a frame did not decode or did not match the frame schema
  | 'E_FRAME_TOO_LARGE'   // a frame is over the configured bound
  | 'E_PAYLOAD_INVALID'   // an RPC payload failed the method's schema
  | 'E_FORBIDDEN_ROLE'    // the caller's certificate role may not call this method
  | 'E_UNKNOWN_METHOD'    // no such RPC method
  | 'E_TIMEOUT'           // an RPC got no answer in time
  | 'E_CLOSED'            // the connection closed before the answer came
  | 'E_UNREACHABLE'       // could not connect to a peer
  | 'E_NOT_FOUND'         // the thing asked for does not exist
  | 'E_START_FAILED'      // a component failed to start
  | 'E_SIGNATURE'         // a commit signature or an allowed-signer key is malformed
  | 'E_SPEC_INVALID'      // a spec repo's files failed to load or validate
  | 'E_NOT_READY'         // a supervised process did not become ready (stopped, failed, or too slow)
  | 'E_INTERNAL'          // a bug: a handler threw something unexpected

export interface OriginErrorJSON {
  code: ErrorCode
  message: string
  data?: Record<string, unknown>
  caller?: string
}

export class OriginError extends Error {
  override readonly name = 'OriginError'
  constructor (
    readonly code: ErrorCode,
    message: string,
    readonly data: Record<string, unknown> = {},
    readonly caller?: string
  ) {
    super(message)
  }

  toJSON (): OriginErrorJSON {
    return { code: this.code, message: this.message, data: this.data, caller: this.caller }
  }

  static fromJSON (json: OriginErrorJSON): OriginError {
    return new OriginError(json.code, json.message, json.data ?? {}, json.caller)
  }
}

/** Any thrown value as an OriginError, keeping its message; unknown throws become E_INTERNAL. */
export function asOriginError (err: unknown, caller?: string): OriginError {
  if (err instanceof OriginError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new OriginError('E_INTERNAL', message, {}, caller)
}

export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

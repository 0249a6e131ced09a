/** What `fn` throws, which must be an OriginError (a config or argument refusal): anything else fails the test. */
import { OriginError } from '../../node/errors'

export function refusal (fn: () => unknown): OriginError {
  try {
    fn()
  } catch (err) {
    if (err instanceof OriginError) return err
    throw err
  }
  throw new Error('expected an OriginError, nothing was thrown')
}

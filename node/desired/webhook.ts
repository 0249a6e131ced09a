/**
 * `POST /hooks/git`: the push webhook git hosts send, authenticated with an HMAC of the
 * body (`X-Hub-Signature-256: sha256=<hex>`, as GitHub and Gitea send) or the secret
 * itself (`X-Gitlab-Token`). A valid call starts a sync at once.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Logger } from '../log'
import type { HttpHandler } from '../transport'

function equal (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function header (h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name]
  return Array.isArray(v) ? v[0] : v
}

export function webhookHandler (secret: string, sync: () => Promise<void>, log: Logger): HttpHandler {
  return async ({ headers, body, remote }) => {
    const expected = 'sha256=' + createHmac('sha256', secret).update(body).digest('hex')
    const signature = header(headers, 'x-hub-signature-256')
    const gitea = header(headers, 'x-gitea-signature')
    const gitlab = header(headers, 'x-gitlab-token')
    const ok = (signature !== undefined && equal(signature, expected)) ||
      (gitea !== undefined && equal('sha256=' + gitea, expected)) ||
      (gitlab !== undefined && equal(gitlab, secret))
    if (!ok) {
      const why = signature === undefined && gitea === undefined && gitlab === undefined ? 'no signature header' : 'signature does not match'
      log.warn(`refused a webhook from ${remote}: ${why}`)
      return { status: 401, body: `webhook refused: ${why}` }
    }
    log.info(`webhook from ${remote}: syncing the spec now`)
    void sync().catch((err) => log.warn(`sync after webhook failed: ${String(err)}`))
    return { status: 202, body: 'sync started' }
  }
}

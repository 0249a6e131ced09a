import test from 'ava'
import http from 'node:http'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { gitHttp } from '../../node/git/http'

async function listen (server: http.Server | ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

test('git http: a server that takes the connection and never answers fails the request after the silence', async (t) => {
  const sockets = new Set<Socket>()
  const server = createServer((s) => { sockets.add(s) })
  const port = await listen(server)
  t.teardown(() => { for (const s of sockets) s.destroy(); server.close() })
  const started = Date.now()
  const err = await t.throwsAsync(gitHttp(300).request({ url: `http://127.0.0.1:${port}/repo.git/info/refs?service=git-upload-pack`, method: 'GET', headers: {} }))
  t.is((err as Error & { code?: string }).code, 'E_TIMEOUT')
  t.regex(err?.message ?? '', /^127\.0\.0\.1:\d+ did not answer for 0\.3 s$/)
  t.true(Date.now() - started < 5000)
})

test('git http: a body that stops coming fails its reading after the silence; redirects are followed with the method kept by 307', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/moved') { res.writeHead(307, { location: '/stall' }).end(); return }
    if (req.url === '/stall') {
      let body = ''
      req.on('data', (d: Buffer) => { body += d.toString() })
      req.on('end', () => { res.writeHead(200, { 'x-method': req.method ?? '', 'x-body': body }); res.write('first part') })
      return
    }
    res.writeHead(404).end()
  })
  const port = await listen(server)
  t.teardown(() => { server.closeAllConnections(); server.close() })
  async function * body (): AsyncIterableIterator<Uint8Array> { yield Buffer.from('want abc') }
  const res = await gitHttp(300).request({ url: `http://127.0.0.1:${port}/moved`, method: 'POST', headers: {}, body: body() })
  t.is(res.statusCode, 200)
  t.is(res.headers?.['x-method'], 'POST')
  t.is(res.headers?.['x-body'], 'want abc')
  t.is(res.url, `http://127.0.0.1:${port}/stall`)
  const got: string[] = []
  const err = await t.throwsAsync(async () => { for await (const c of res.body as AsyncIterableIterator<Uint8Array>) got.push(Buffer.from(c).toString()) })
  t.deepEqual(got, ['first part'])
  t.regex(err?.message ?? '', /sent nothing more for 0\.3 s/)
})

/** The local API's table (node/protocol/local-api.ts): paths to routes with checked parameters, and back. */
import test from 'ava'
import { OriginError } from '../../node/errors'
import { apiPath, localApiRoutes, routeMatcher } from '../../node/protocol/local-api'

const match = routeMatcher(localApiRoutes)

test('local api table: a path is its route with its parameters, percent-decoded; apiPath builds the same path back', (t) => {
  t.deepEqual(match('/v1/self'), { name: 'self', params: {} })
  t.deepEqual(match('/v1/where/web'), { name: 'where', params: { service: 'web' } })
  t.deepEqual(match('/v1/owner/kv/user%2F1%20a'), { name: 'owner', params: { service: 'kv', key: 'user/1 a' } })
  const path = apiPath('owner', { service: 'kv', key: 'user/1 a' })
  t.is(path, '/v1/owner/kv/user%2F1%20a')
  t.deepEqual(match(path), { name: 'owner', params: { service: 'kv', key: 'user/1 a' } })
  t.is(match('/v1/nothing'), undefined)
  t.is(match('/v1/where/web/extra'), undefined)
})

test('local api table: a bad parameter is refused naming it', (t) => {
  const bad = t.throws(() => match('/v1/where/Not_A_Service'))
  t.true(bad instanceof OriginError && bad.code === 'E_PAYLOAD_INVALID')
  t.regex(bad?.message ?? '', /^a parameter of GET \/v1\/where\/:service is invalid: \/service: must match pattern/)
  const undecodable = t.throws(() => match('/v1/owner/kv/%E0%A4%A'))
  t.regex(undecodable?.message ?? '', /key is not valid percent-encoding/)
  const long = t.throws(() => match(`/v1/owner/kv/${'k'.repeat(1025)}`))
  t.regex(long?.message ?? '', /\/key: must NOT have more than 1024 characters/)
})

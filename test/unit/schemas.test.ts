/**
 * Checks load on their first use (node/validate.ts), so a schema ajv refuses would
 * otherwise show only when its first value comes. This loads every one a started node
 * has made — image.json's, frames', each RPC method's payload, the local API's, the
 * plugins' — and fails on the first bad schema; every one must come compiled ahead by the
 * build (build/schemas.ts), and each compiled-ahead check must answer as ajv compiling its
 * schema now does.
 */
import test from 'ava'
import Ajv from 'ajv'
import fc from 'fast-check'
import { declaredByANode } from '../../build/schemas'
import { AJV_OPTIONS, checksCompiledHere, compileAll, declaredSchemas, schemaCheck } from '../../node/validate'

test.serial('schemas: every validator a started node has made compiles', async (t) => {
  // The node the build compiles from: started on the in-memory transport, then stopped.
  await declaredByANode()
  const compiled = compileAll()
  t.true(compiled > 20, `loaded ${compiled} checks not used yet (the node's methods alone are more than 20)`)
  t.is(compileAll(), 0, 'each is loaded once')
  t.is(checksCompiledHere(), 0, 'every check a node declares was compiled by the build (npm run build runs build/schemas.js)')
})

test.serial('schemas: a check compiled ahead answers every value as ajv compiling its schema now does, errors included', (t) => {
  const now = { all: new Ajv(AJV_OPTIONS.all), first: new Ajv(AJV_OPTIONS.first) }
  const schemas = declaredSchemas()
  t.true(schemas.length > 20)
  const fixed = [{}, [], null, 0, -1, 1.5, '', 'x', true, { id: 'a' }, { t: 'req', id: 1, m: 'x' }, { name: 'n', run: {} }]
  for (const { schema, mode } of schemas) {
    const ahead = schemaCheck(schema, mode)()
    const here = now[mode].compile(schema)
    for (const value of [...fixed, ...fc.sample(fc.anything(), 25)]) {
      const verdict = ahead(value)
      t.is(verdict, here(value), `${JSON.stringify(value)} against ${JSON.stringify(schema).slice(0, 120)}`)
      if (!verdict) t.deepEqual(ahead.errors, here.errors)
    }
  }
})

import { type FastifyInstance, type FastifyRequest } from 'fastify'
import { readBody, readJson } from '../tensor/json-reader'
import { type ReadAside } from '../tensor/rows-ahead'
import { addBufferParser, releaseBody, requestMemory } from './raw-body'

/**
 * What a route may declare in its `config`: the top-level body keys that hold a tensor, and
 * those that hold an object of tensors by name.
 */
export interface TensorRouteConfig { tensorKeys?: ReadonlySet<string>, tensorMaps?: ReadonlySet<string> }

/**
 * Parses a JSON body with no tensor fields: the reader's plain JSON of any type, with its depth
 * bound and refusal of prototype keys (INVALID_REQUEST, their places inside `root`); the
 * route's schema judges the rest.
 */
export function parseJsonBody (bytes: Buffer, root = ''): unknown {
  return readJson(bytes, undefined, undefined, undefined, root)
}

/**
 * Installs the JSON body parser on `app` (replacing Fastify's): the bytes are read once, and
 * the fields a route names in `config.tensorKeys` (and the values of those in
 * `config.tensorMaps`) arrive as decoded tensors, never as arrays of JS numbers; a route that
 * declares tensors calls `releaseBody` once its kernel has run, and any answered request gives
 * its memory back (onResponse). Fastify's body limit still applies before parsing. With
 * `aside`, part of a large tensor of JSON numbers may be read on another thread (src/tensor/rows-ahead.ts).
 */
export function jsonBodyParser (app: FastifyInstance, aside?: ReadAside): void {
  app.removeContentTypeParser('application/json')
  // a request answered without reaching its handler (the schema refused it) still gives back
  // the memory its tensors were decoded into; for this scope and every route registered in it
  app.addHook('onResponse', async request => { releaseBody(request) })
  addBufferParser(app, 'application/json', (request: FastifyRequest, bytes: Buffer) => {
    const config = request.routeOptions.config as TensorRouteConfig | undefined
    // large tensors go into reused memory, which the route hands back once answered (releaseBody);
    // a large tensor's second half (nested or flat numbers) may be read on an idle kernel worker meanwhile
    return config?.tensorKeys === undefined ? readJson(bytes) : readBody(bytes, config.tensorKeys, config.tensorMaps, size => requestMemory(request, size), aside)
  })
}

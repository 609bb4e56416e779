import type * as grpc from '@grpc/grpc-js'

/** A request message that did not decode as its method's request type. */
export class UndecodableRequest {
  constructor (readonly method: string, readonly reason: string) {}
}

/**
 * A service whose request messages that do not decode reach `refuse` instead of the handler:
 * grpc-js answers a decoding failure itself with INTERNAL, which blames the server for the
 * client's bytes. Decoding never throws here; a message that fails arrives as an
 * UndecodableRequest, and `refuse` says what to answer (a unary call's error, or the error
 * that ends a stream).
 */
export function refusingUndecodable (
  definition: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation, refuse: (request: UndecodableRequest) => grpc.ServiceError
): { definition: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation } {
  const tolerant: Record<string, grpc.MethodDefinition<unknown, unknown>> = {}
  const guarded: grpc.UntypedServiceImplementation = {}
  for (const [name, method] of Object.entries(definition)) {
    tolerant[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes)
        } catch (err) {
          return new UndecodableRequest(name, err instanceof Error ? err.message : String(err))
        }
      }
    }
    const handler = handlers[name] as (call: { request: unknown, emit: (event: 'error', err: grpc.ServiceError) => boolean }, callback?: grpc.sendUnaryData<unknown>) => void
    guarded[name] = ((call: Parameters<typeof handler>[0], callback?: grpc.sendUnaryData<unknown>) => {
      if (!(call.request instanceof UndecodableRequest)) return handler(call, callback)
      const err = refuse(call.request)
      if (method.responseStream) call.emit('error', err)
      else callback?.(err)
    }) as grpc.UntypedHandleCall
  }
  return { definition: tolerant, handlers: guarded }
}

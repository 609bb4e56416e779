import * as grpc from '@grpc/grpc-js'
import { shortened } from '../../errors'

/** The statuses of grpc.health.v1 (proto/health.proto), as @grpc/proto-loader reads its enum. */
export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN'

/** How often a Watch stream looks at readiness again (readiness has no events to wait on). */
const WATCH_POLL_MS = 1000

/**
 * The gRPC health checking protocol (grpc.health.v1.Health), which Kubernetes' grpc probes
 * call: SERVING exactly when `ready()` (the rule of GET /readyz), for the whole server ("")
 * and for each service in `services`; any other service name is NOT_FOUND. Watch sends the
 * status, then each change.
 */
export class HealthService {
  private readonly watches = new Set<grpc.ServerWritableStream<{ service?: string }, { status: ServingStatus }>>()
  private readonly timers = new Set<NodeJS.Timeout>()

  constructor (private readonly ready: () => boolean, private readonly services: readonly string[]) {}

  /** The handlers for grpc.Server.addService. */
  handlers (): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<{ service?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const service = call.request.service ?? ''
        if (!this.known(service)) {
          const metadata = new grpc.Metadata()
          metadata.set('losshub-code', 'NOT_FOUND')
          // cut as every status message is: a header past the client's limit never reaches it
          return callback({ code: grpc.status.NOT_FOUND, details: shortened(`unknown service '${shortened(service, 200)}'; known: "" (the server), ${this.services.join(', ')}`), metadata })
        }
        callback(null, { status: this.status() })
      },
      Watch: (call: grpc.ServerWritableStream<{ service?: string }, { status: ServingStatus }>) => {
        const service = call.request.service ?? ''
        if (!this.known(service)) {
          call.write({ status: 'SERVICE_UNKNOWN' })
          call.end()
          return
        }
        let last = this.status()
        call.write({ status: last })
        this.watches.add(call)
        const timer = setInterval(() => {
          const now = this.status()
          if (now !== last) call.write({ status: now })
          last = now
        }, WATCH_POLL_MS)
        this.timers.add(timer)
        call.once('cancelled', () => {
          clearInterval(timer)
          this.timers.delete(timer)
          this.watches.delete(call)
        })
      }
    }
  }

  /** Ends every Watch stream (with NOT_SERVING last): a server shutting down waits for none. */
  close (): void {
    for (const timer of this.timers) clearInterval(timer)
    this.timers.clear()
    for (const call of this.watches) {
      call.write({ status: 'NOT_SERVING' })
      call.end()
    }
    this.watches.clear()
  }

  private known (service: string): boolean { return service === '' || this.services.includes(service) }

  private status (): ServingStatus { return this.ready() ? 'SERVING' : 'NOT_SERVING' }
}

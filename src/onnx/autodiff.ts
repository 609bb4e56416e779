import { type Value } from './graph'
import { add, zerosLike } from './ops'

/**
 * Reverse-mode differentiation over the graph's tape: the vector-Jacobian product of
 * `output` seeded with `seed` (shaped like output), for each value of `wrt`.
 * Gradient nodes are added to the same graph, so forward and backward run in one call.
 */
export function backward (output: Value, seed: Value, wrt: readonly Value[]): Value[] {
  const G = output.graph
  return G.untracked(() => {
    const grads = new Map<string, Value>([[output.name, seed]])
    for (let i = G.tape.length - 1; i >= 0; i--) {
      const entry = G.tape[i]
      const g = grads.get(entry.output.name)
      if (g === undefined) continue
      const inputGrads = entry.vjp(g)
      entry.inputs.forEach((input, k) => {
        const gi = inputGrads[k]
        if (gi === undefined || !input.tracked) return
        const prev = grads.get(input.name)
        grads.set(input.name, prev === undefined ? gi : add(prev, gi))
      })
    }
    return wrt.map(w => grads.get(w.name) ?? zerosLike(w))
  })
}

import { type LossDef } from './loss'
import bce from './bce'
import bceWithLogits from './bce-with-logits'
import crossEntropy from './cross-entropy'
import huber from './huber'
import klDiv from './kl-div'
import l1 from './l1'
import mse from './mse'
import nll from './nll'
import smoothL1 from './smooth-l1'

/** Every served loss, in catalog order. Adding a loss is one file and one line here. */
export const LOSSES: readonly LossDef[] = [
  mse, l1, smoothL1, huber,
  crossEntropy, nll, bce, bceWithLogits, klDiv
] as unknown as LossDef[]

/** The losses by name; a name declared twice is a programming error caught at start-up. */
export const REGISTRY: ReadonlyMap<string, LossDef> = (() => {
  const m = new Map<string, LossDef>()
  for (const def of LOSSES) {
    if (m.has(def.name)) throw new Error(`loss ${def.name} is registered twice`)
    m.set(def.name, def)
  }
  return m
})()

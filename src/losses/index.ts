import { type LossDef } from './loss'
import balancedBce from './balanced-bce'
import bce from './bce'
import bceWithLogits from './bce-with-logits'
import binaryCrossentropy from './binary-crossentropy'
import categoricalCrossentropy from './categorical-crossentropy'
import cosineEmbedding from './cosine-embedding'
import cosineSimilarity from './cosine-similarity'
import crossEntropy from './cross-entropy'
import ctc from './ctc'
import dice from './dice'
import gaussianNll from './gaussian-nll'
import hinge from './hinge'
import hingeEmbedding from './hinge-embedding'
import huber from './huber'
import jaccard from './jaccard'
import klDiv from './kl-div'
import l1 from './l1'
import logCosh from './log-cosh'
import lovaszHinge from './lovasz-hinge'
import lovaszSoftmax from './lovasz-softmax'
import marginRanking from './margin-ranking'
import mse from './mse'
import multiMargin from './multi-margin'
import multilabelMargin from './multilabel-margin'
import multilabelSoftMargin from './multilabel-soft-margin'
import nll from './nll'
import perceptron from './perceptron'
import poissonNll from './poisson-nll'
import sigmoidFocal from './sigmoid-focal'
import smoothL1 from './smooth-l1'
import softMargin from './soft-margin'
import softmaxFocal from './softmax-focal'
import squaredHinge from './squared-hinge'
import tripletMargin from './triplet-margin'
import tversky from './tversky'

/** Every served loss, in catalog order. Adding a loss is one file and one line here. */
export const LOSSES: readonly LossDef[] = [
  mse, l1, smoothL1, huber, poissonNll, gaussianNll, logCosh,
  crossEntropy, nll, bce, bceWithLogits, balancedBce, sigmoidFocal, softmaxFocal, klDiv,
  softMargin, multilabelSoftMargin, multiMargin, multilabelMargin, hinge, squaredHinge, perceptron,
  binaryCrossentropy, categoricalCrossentropy,
  marginRanking, hingeEmbedding, cosineEmbedding, cosineSimilarity, tripletMargin,
  ctc,
  lovaszSoftmax, lovaszHinge, dice, jaccard, tversky
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

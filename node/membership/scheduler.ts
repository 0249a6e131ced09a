/**
 * Time as the membership sees it: the node's clock (node/clock). The simulation (sim/)
 * passes a virtual one so a thousand nodes run in one process, deterministically, faster
 * than real time.
 */
import { realClock, type Clock } from '../clock'

export type { Timer } from '../clock'
export type Scheduler = Clock
export const realScheduler = realClock

// What the streams pages leave on `window` for tests and debugging (checked with the pages by tsc).
import type { StreamsPlayer } from "../src/pentad/apps/streams/static/streams-sdk.js";

declare global {
  interface Window {
    /** The player page's player (/streams/watch/{id}). */
    pentadStreamsPlayer?: StreamsPlayer;
    /** The grid's tiles by camera id (/streams/grid). */
    pentadStreamsGrid?: Map<string, { player: StreamsPlayer | null }>;
  }
}

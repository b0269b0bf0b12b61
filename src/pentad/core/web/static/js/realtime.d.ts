// Types of realtime.js, the browser client of Pentad's realtime hub (/ws). See docs/realtime-browser.md.

/** protocol.CloseCode, plus the browser's own 1001 (going away) and 1006 (connection lost). */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  INTERNAL_ERROR: 1011;
  SERVICE_RESTART: 1012;
  BAD_MESSAGE: 4000;
  AUTH_FAILED: 4001;
  AUTH_TIMEOUT: 4002;
  CREDENTIALS_EXPIRED: 4003;
  CREDENTIALS_REVOKED: 4004;
  SLOW_CONSUMER: 4005;
  IDLE_TIMEOUT: 4006;
}>;

/** protocol.ErrorCode: why a request was refused. */
export type ErrorCode =
  | "bad_request"
  | "auth_failed"
  | "principal_changed"
  | "unknown_topic"
  | "forbidden"
  | "already_subscribed"
  | "not_subscribed"
  | "too_many_subscriptions"
  | "publish_not_allowed"
  | "presence_not_enabled"
  | "unknown_method"
  | "call_failed"
  | "unavailable";

/** A failed acknowledgement (or, from onError, a subscription the server ended: code "forbidden"). */
export declare class RealtimeError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly code: ErrorCode;
}

/** The socket closed before the answer came, or the client is closed. */
export declare class RealtimeClosedError extends Error {
  constructor(code: number | null, reason?: string);
  readonly code: number | null;
  readonly reason: string;
}

/** No answer within the acknowledgement timeout (the request may still have been carried out). */
export declare class RealtimeTimeoutError extends Error {
  constructor(op: string, milliseconds: number);
}

export type JsonObject = { [key: string]: unknown };

/** One event; `seq` grows by one per event on a topic within one `epoch`. */
export interface RealtimeEvent<Data = JsonObject> {
  topic: string;
  seq: number;
  epoch: string;
  /** Publish time, Unix milliseconds. */
  ts: number;
  data: Data;
}

/** One principal present on a topic, however many connections it has. */
export interface Member {
  id: string;
  kind: string;
}

export interface PresenceChange {
  op: "join" | "leave";
  topic: string;
  member: Member;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "disconnected" | "closed";

export interface StateDetail {
  /** The close code of the socket that ended (null when getting a token failed). */
  code?: number | null;
  reason?: string;
  /** "disconnected" only: milliseconds until the next attempt. */
  retryIn?: number;
}

interface CommonOptions {
  /** WebSocket URL; relative URLs and http(s) are resolved against the page. Default: "/ws". */
  url?: string;
  onStateChange?: (state: ConnectionState, detail: StateDetail) => void;
  /** Milliseconds to wait for an acknowledgement (and for a connection, in publish/presence). */
  ackTimeout?: number;
  /** First reconnection delay ceiling, milliseconds (doubles per failed attempt, full jitter). */
  backoffInitial?: number;
  /** Largest reconnection delay, milliseconds. */
  backoffMax?: number;
  /** With getToken: send a fresh token this long before the current one expires, milliseconds. */
  refreshMargin?: number;
}

export type RealtimeClientOptions = CommonOptions &
  (
    | { /** A fixed access token, API key or service token. */ token: string; getToken?: never }
    | {
        /**
         * Called for every new socket and before the token expires (it may refresh the token over REST).
         * Resolve to null when nobody is signed in: the client closes. A rejection counts as a failed attempt.
         */
        getToken: () => Promise<string | null>;
        token?: never;
      }
  );

export interface SubscribeOptions {
  /** Resume after this sequence number (of an event seen earlier); needs `epoch`. */
  since?: number;
  /** The epoch of `since`. */
  epoch?: string;
  /** Events may have been missed (resume failed, or the broker lost continuity): refetch over REST. */
  onRecoveryFailed?: (topic: string) => void;
  /** Someone joined or left (topics with presence). */
  onPresence?: (change: PresenceChange) => void;
  /** The server refused the subscription, or ended it (the subscription is gone). */
  onError?: (topic: string, error: RealtimeError) => void;
}

export declare class RealtimeClient {
  constructor(options: RealtimeClientOptions);
  readonly state: ConnectionState;
  /** Who the server authenticated on the current (or last) socket. */
  principal: Member | null;
  connectionId: string | null;
  /** Start (and keep) connecting; resolves once connected, rejects if the client stops for good first. */
  connect(): Promise<void>;
  /** Close the socket and stop reconnecting. */
  close(): void;
  /**
   * Follow `topic` (one subscription per topic per client): `handler` gets every event once, in order,
   * across reconnections. Returns the function that unsubscribes.
   */
  subscribe<Data = JsonObject>(
    topic: string,
    handler: (event: RealtimeEvent<Data>) => void,
    options?: SubscribeOptions,
  ): () => void;
  /** Publish on a topic that lets clients publish. */
  publish(topic: string, data: JsonObject): Promise<{ seq: number; epoch: string }>;
  /**
   * Call a server-side handler of the topic (TopicSpec.calls): its answer, or a RealtimeError
   * ("call_failed", "unknown_method", "forbidden", ...), RealtimeClosedError, RealtimeTimeoutError after
   * `timeout` ms (default ackTimeout). Never repeated on another socket.
   */
  call<Result = JsonObject>(
    topic: string,
    method: string,
    data?: JsonObject,
    options?: { timeout?: number },
  ): Promise<Result>;
  /** The members present on a topic with presence. */
  presence(topic: string): Promise<Member[]>;
}

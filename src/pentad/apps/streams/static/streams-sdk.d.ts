// Types of the Pentad streams browser SDK (streams-sdk.js). Checked by `make lint` (tsc --noEmit).

export type Uuid = string;
export type IsoDate = string;
export type Visibility = "public" | "unlisted" | "private";
export type Source = "rtmp" | "rtsp" | "whip";
export type Profile = "passthrough" | "ladder";
export type RecordingMode = "off" | "continuous" | "on_demand";
export type RtspTransport = "tcp" | "udp";
export type CameraRole = "viewer" | "operator" | "owner";
export type ExportStatus = "queued" | "running" | "done" | "failed" | "expired";

export interface Camera {
  id: Uuid;
  owner_id: Uuid;
  name: string;
  visibility: Visibility;
  source: Source;
  profile: Profile;
  recording_mode: RecordingMode;
  retention_days: number | null;
  retention_bytes: number | null;
  thumbnail_interval: number | null;
  /** The RTSP URL with its password masked (`****`); managers only. */
  rtsp_url: string | null;
  rtsp_transport: RtspTransport;
  live: boolean;
  role: CameraRole | null;
  can_operate: boolean;
  can_manage: boolean;
  created_at: IsoDate;
  updated_at: IsoDate;
}

export interface CameraCreate {
  name: string;
  visibility?: Visibility;
  source?: Source;
  profile?: Profile;
  recording_mode?: RecordingMode;
  retention_days?: number | null;
  retention_bytes?: number | null;
  thumbnail_interval?: number | null;
  rtsp_url?: string | null;
  rtsp_transport?: RtspTransport;
}

export type CameraUpdate = Partial<CameraCreate>;

export interface DirectoryEntry {
  id: Uuid;
  name: string;
  live: boolean;
}

export interface StreamKey {
  id: Uuid;
  camera_id: Uuid;
  name: string;
  /** The key's last 4 characters. */
  hint: string;
  created_at: IsoDate;
  revoked_at: IsoDate | null;
  last_used_at: IsoDate | null;
}

export interface StreamKeyCreated extends StreamKey {
  /** `psk_…`, in this answer only. */
  key: string;
  rtmp_url: string;
}

export interface Grant {
  user_id: Uuid;
  role: CameraRole;
}

export interface PlaybackToken {
  /** `psp_…`: this camera's media and live events only, until it expires. */
  token: string;
  expires_at: IsoDate;
  urls: { hls: string; whep: string };
}

export interface Recording {
  id: Uuid;
  camera_id: Uuid;
  session_id: Uuid | null;
  mode: "continuous" | "on_demand";
  started_at: IsoDate;
  ended_at: IsoDate | null;
  stop_reason: string | null;
}

export interface TimelineSpan {
  start: IsoDate;
  end: IsoDate;
  segments: number;
  bytes: number;
}

export interface Timeline {
  camera_id: Uuid;
  start: IsoDate;
  end: IsoDate;
  recordings: Recording[];
  spans: TimelineSpan[];
  stored_bytes: number;
}

export interface Segment {
  id: number;
  recording_id: Uuid;
  start: IsoDate;
  duration_ms: number;
  size_bytes: number;
}

export interface Export {
  id: Uuid;
  camera_id: Uuid;
  start: IsoDate;
  end: IsoDate;
  status: ExportStatus;
  job_id: Uuid | null;
  size_bytes: number | null;
  created_at: IsoDate;
  expires_at: IsoDate | null;
  download_url: string | null;
}

export type When = Date | IsoDate;

export interface Range {
  start?: When;
  end?: When;
  limit?: number;
}

export declare class StreamsApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  constructor(status: number, code: string, detail: string);
}

export interface StreamsClientOptions {
  /** The server's root URL; default: the origin the SDK was loaded from. */
  baseUrl?: string;
  /** An access token or API key, sent as a bearer token. */
  token?: string | null;
  /** Called for a token when there is none, and again when the server refuses one. */
  tokenProvider?: (() => Promise<string> | string) | null;
  /** Without a token: the page's CSRF token (default: `<meta name="csrf-token">`). */
  csrfToken?: string | null;
  credentials?: RequestCredentials;
}

/** What the hub's topics carry (docs/streams.md, "Live events"). */
export type StreamsEvent =
  | { type: "camera.online" | "camera.offline"; camera_id: Uuid; session_id: Uuid; reason: string | null }
  | { type: "camera.updated" | "camera.deleted"; camera_id: Uuid; name: string; visibility: Visibility }
  | { type: "key.created" | "key.revoked"; camera_id: Uuid; key_id: Uuid; hint: string }
  | { type: "grant.added" | "grant.removed"; camera_id: Uuid; role: CameraRole | null }
  | {
      type: "recording.started" | "recording.stopped";
      camera_id: Uuid;
      recording_id: Uuid;
      mode: string;
      reason: string | null;
    }
  | {
      type: "export.progress";
      camera_id: Uuid;
      export_id: Uuid;
      status: string;
      progress: number;
      size_bytes: number | null;
      error: string | null;
    };

export interface HubFrame {
  topic: string;
  seq: number;
  epoch: string;
  ts: number;
  data: StreamsEvent;
}

export interface WatchOptions {
  /** Resume after an event seen earlier (with its epoch). */
  since?: number | null;
  epoch?: string | null;
  /** Events may have been missed: read the state again over REST. */
  onRecoveryFailed?: (topic: string) => void;
  /** The hub refused or ended the subscription (e.g. `forbidden`). */
  onError?: (topic: string, error: Error) => void;
}

export interface RealtimeConnection {
  readonly state: "idle" | "connecting" | "connected" | "disconnected" | "closed";
  connect(): Promise<void>;
  close(): void;
}

export declare class StreamsClient {
  readonly baseUrl: string;
  token: string | null;
  constructor(options?: StreamsClientOptions);
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  listCameras(): Promise<Camera[]>;
  myCameras(): Promise<Camera[]>;
  directory(): Promise<DirectoryEntry[]>;
  getCamera(cameraId: Uuid): Promise<Camera>;
  createCamera(data: CameraCreate): Promise<Camera>;
  updateCamera(cameraId: Uuid, data: CameraUpdate): Promise<Camera>;
  deleteCamera(cameraId: Uuid): Promise<null>;
  createKey(cameraId: Uuid, name?: string): Promise<StreamKeyCreated>;
  listKeys(cameraId: Uuid): Promise<StreamKey[]>;
  rotateKey(cameraId: Uuid, keyId: Uuid): Promise<StreamKeyCreated>;
  revokeKey(cameraId: Uuid, keyId: Uuid): Promise<null>;
  listGrants(cameraId: Uuid): Promise<Grant[]>;
  grant(cameraId: Uuid, email: string, role: CameraRole): Promise<Grant>;
  revokeGrant(cameraId: Uuid, userId: Uuid): Promise<null>;
  playbackToken(cameraId: Uuid): Promise<PlaybackToken>;
  startRecording(cameraId: Uuid): Promise<Recording>;
  stopRecording(cameraId: Uuid): Promise<null>;
  timeline(cameraId: Uuid, range?: Range): Promise<Timeline>;
  segments(cameraId: Uuid, range?: Range): Promise<Segment[]>;
  createExport(cameraId: Uuid, start: When, end: When): Promise<Export>;
  listExports(cameraId: Uuid): Promise<Export[]>;
  getExport(exportId: Uuid): Promise<Export>;
  /** The hub connection, made on first use. */
  readonly realtime: RealtimeConnection;
  /** Follow a camera's live events; returns the function that stops. */
  watchCamera(cameraId: Uuid, handler: (event: StreamsEvent, frame: HubFrame) => void, options?: WatchOptions): () => void;
  /** Follow the public cameras going online, offline or away. */
  watchDirectory(handler: (event: StreamsEvent, frame: HubFrame) => void, options?: WatchOptions): () => void;
  /** Close the hub connection. */
  close(): void;
  hlsUrl(cameraId: Uuid, token?: string | null): string;
  whepUrl(cameraId: Uuid): string;
  snapshotUrl(cameraId: Uuid, token?: string | null): string;
  vodUrl(cameraId: Uuid, start: When, end: When, token?: string | null): string;
}

export type PlayerProtocol = "webrtc" | "hls";
export type PlayerStatus =
  | "idle"
  | "live"
  | "offline"
  | "switching"
  | "unavailable"
  | "unsupported"
  | "stopped";

export interface StreamsPlayerOptions {
  /** With cameraId: the URLs and the token renewal come from the client. */
  client?: StreamsClient | null;
  cameraId?: Uuid | null;
  /** The live playlist (default: client.hlsUrl(cameraId, token)). */
  src?: string | null;
  /** The WHEP endpoint (default: client.whepUrl(cameraId)); none: HLS only. */
  whep?: string | null;
  /** A private camera's playback token, renewed before it expires. */
  token?: string | null;
  /** Seconds the token lives (default 300). */
  tokenTtl?: number;
  /** A fresh playback token (default: client.playbackToken(cameraId)). */
  renewToken?: (() => Promise<PlaybackToken>) | null;
  /** "auto" (default): WebRTC, then HLS. */
  protocol?: "auto" | PlayerProtocol;
  /** Where to load hls.js from (default: the SDK server's /streams/vendor/hls.min.mjs). */
  hlsModuleUrl?: string;
  /** How long WebRTC may take to show a picture before HLS takes over (default 6000). */
  webrtcTimeoutMs?: number;
}

export interface PlayerStatusDetail {
  status: PlayerStatus;
  text: string;
  protocol: PlayerProtocol | null;
}

export declare class StreamsPlayer extends EventTarget {
  readonly video: HTMLVideoElement;
  readonly options: StreamsPlayerOptions;
  token: string | null;
  /** What plays now (also the video's data-protocol attribute). */
  protocol: PlayerProtocol | null;
  status: PlayerStatus;
  /** The hls.js instance while HLS plays. */
  hls: unknown;
  /** The peer connection while WebRTC plays. */
  peer: RTCPeerConnection | null;
  constructor(video: HTMLVideoElement, options?: StreamsPlayerOptions);
  /** Play: WebRTC first unless `protocol` says otherwise, HLS as the fallback. */
  start(): Promise<void>;
  /** Stop and let go of everything (the WHEP session is ended). */
  stop(): void;
  addEventListener(
    type: "status",
    listener: (event: CustomEvent<PlayerStatusDetail>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: "token",
    listener: (event: CustomEvent<PlaybackToken>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

export declare class StreamsPlayerElement extends HTMLElement {
  player: StreamsPlayer | null;
  connectedCallback(): void;
  disconnectedCallback(): void;
}

/** hls.js (its default export), loaded once. */
export declare function loadHls(url?: string): Promise<unknown>;

/** Register <pentad-stream-player camera-id base-url token api-token protocol controls>. */
export declare function defineStreamsPlayer(name?: string): void;

<?php
// The PHP client of the Pentad streams REST API: cameras, stream keys, roles, playback tokens, recordings
// and exports. No dependencies beyond PHP 8.1+ itself (its http stream wrapper; openssl for https).
//
//   require 'sdk/php/src/StreamsClient.php';
//   $streams = new Pentad\Streams\StreamsClient('https://video.example.com', getenv('PENTAD_TOKEN'));
//   $camera = $streams->createCamera('Yard', ['visibility' => 'private']);
//   $key = $streams->createKey($camera['id'], 'obs');   // $key['key'] is given this once
//
// Answers are the API's JSON as associative arrays (docs/streams.md lists their fields). A refusal throws
// StreamsApiError with the problem+json `status`, `code` and `detail`; a network failure StreamsError.

declare(strict_types=1);

namespace Pentad\Streams;

class StreamsError extends \RuntimeException
{
}

class StreamsApiError extends StreamsError
{
    public function __construct(
        public readonly int $status,
        public readonly string $errorCode,
        public readonly string $detail,
    ) {
        parent::__construct("$status $errorCode: $detail", $status);
    }
}

final class StreamsClient
{
    private string $baseUrl;

    /**
     * @param string $baseUrl the server's root URL
     * @param string $token an access token or API key (`pak_…`), sent as a bearer token
     * @param float $timeout seconds a request may take
     */
    public function __construct(string $baseUrl, private string $token, private float $timeout = 30.0)
    {
        $this->baseUrl = rtrim($baseUrl, '/');
    }

    // ------------------------------------------------------------ cameras

    /** @param array<string, mixed> $fields visibility, source, profile, recording_mode, retention_days, … */
    public function createCamera(string $name, array $fields = []): array
    {
        return $this->request('POST', '/api/streams/cameras', ['name' => $name] + $fields);
    }

    public function listCameras(): array
    {
        return $this->request('GET', '/api/streams/cameras');
    }

    public function directory(): array
    {
        return $this->request('GET', '/api/streams/directory');
    }

    public function getCamera(string $cameraId): array
    {
        return $this->request('GET', '/api/streams/cameras/' . self::id($cameraId));
    }

    /** @param array<string, mixed> $fields only these change; null puts an optional one back to its default */
    public function updateCamera(string $cameraId, array $fields): array
    {
        return $this->request('PATCH', '/api/streams/cameras/' . self::id($cameraId), (object) $fields);
    }

    public function deleteCamera(string $cameraId): void
    {
        $this->request('DELETE', '/api/streams/cameras/' . self::id($cameraId));
    }

    // ------------------------------------------------------------ stream keys

    /** A new key: its `key` (`psk_…`) is in this answer only. */
    public function createKey(string $cameraId, string $name = ''): array
    {
        return $this->request('POST', '/api/streams/cameras/' . self::id($cameraId) . '/keys', ['name' => $name]);
    }

    public function listKeys(string $cameraId): array
    {
        return $this->request('GET', '/api/streams/cameras/' . self::id($cameraId) . '/keys');
    }

    /** Revoke a key and make its replacement, given this once. */
    public function rotateKey(string $cameraId, string $keyId): array
    {
        $path = '/api/streams/cameras/' . self::id($cameraId) . '/keys/' . self::id($keyId) . '/rotate';
        return $this->request('POST', $path);
    }

    public function revokeKey(string $cameraId, string $keyId): void
    {
        $this->request('DELETE', '/api/streams/cameras/' . self::id($cameraId) . '/keys/' . self::id($keyId));
    }

    // ------------------------------------------------------------ roles and playback

    public function listGrants(string $cameraId): array
    {
        return $this->request('GET', '/api/streams/cameras/' . self::id($cameraId) . '/grants');
    }

    /** @param string $role viewer, operator or owner */
    public function grant(string $cameraId, string $email, string $role): array
    {
        $body = ['email' => $email, 'role' => $role];
        return $this->request('POST', '/api/streams/cameras/' . self::id($cameraId) . '/grants', $body);
    }

    public function revokeGrant(string $cameraId, string $userId): void
    {
        $this->request('DELETE', '/api/streams/cameras/' . self::id($cameraId) . '/grants/' . self::id($userId));
    }

    /** A short-lived token (`psp_…`) that plays this camera only, with its HLS and WHEP URLs. */
    public function playbackToken(string $cameraId): array
    {
        return $this->request('POST', '/api/streams/cameras/' . self::id($cameraId) . '/playback-token');
    }

    public function hlsUrl(string $cameraId, ?string $token = null): string
    {
        $url = $this->baseUrl . '/streams/media/' . self::id($cameraId) . '/index.m3u8';
        return $token === null ? $url : $url . '?' . http_build_query(['token' => $token]);
    }

    public function snapshotUrl(string $cameraId, ?string $token = null): string
    {
        $url = $this->baseUrl . '/streams/media/' . self::id($cameraId) . '/snapshot.jpg';
        return $token === null ? $url : $url . '?' . http_build_query(['token' => $token]);
    }

    // ------------------------------------------------------------ recordings and exports

    public function startRecording(string $cameraId): array
    {
        return $this->request('PUT', '/api/streams/cameras/' . self::id($cameraId) . '/recording');
    }

    public function stopRecording(string $cameraId): void
    {
        $this->request('DELETE', '/api/streams/cameras/' . self::id($cameraId) . '/recording');
    }

    /** Recordings and recorded spans of a range (default: the last 24 hours). */
    public function timeline(string $cameraId, ?\DateTimeInterface $start = null, ?\DateTimeInterface $end = null): array
    {
        $query = self::range($start, $end);
        return $this->request('GET', '/api/streams/cameras/' . self::id($cameraId) . '/recordings' . $query);
    }

    public function segments(string $cameraId, ?\DateTimeInterface $start = null, ?\DateTimeInterface $end = null): array
    {
        $query = self::range($start, $end);
        return $this->request('GET', '/api/streams/cameras/' . self::id($cameraId) . '/segments' . $query);
    }

    public function vodUrl(string $cameraId, \DateTimeInterface $start, \DateTimeInterface $end, ?string $token = null): string
    {
        $query = ['start' => self::iso($start), 'end' => self::iso($end)] + ($token === null ? [] : ['token' => $token]);
        return $this->baseUrl . '/streams/recordings/' . self::id($cameraId) . '/vod.m3u8?' . http_build_query($query);
    }

    /** Queue an MP4 export of a recorded range (operators); poll getExport() until `status` is final. */
    public function createExport(string $cameraId, \DateTimeInterface $start, \DateTimeInterface $end): array
    {
        $body = ['start' => self::iso($start), 'end' => self::iso($end)];
        return $this->request('POST', '/api/streams/cameras/' . self::id($cameraId) . '/exports', $body);
    }

    public function listExports(string $cameraId): array
    {
        return $this->request('GET', '/api/streams/cameras/' . self::id($cameraId) . '/exports');
    }

    public function getExport(string $exportId): array
    {
        return $this->request('GET', '/api/streams/exports/' . self::id($exportId));
    }

    /** Wait (polling) until an export is done, failed or expired; its final state. */
    public function waitExport(string $exportId, float $timeout = 300.0, float $interval = 1.0): array
    {
        $deadline = microtime(true) + $timeout;
        while (true) {
            $export = $this->getExport($exportId);
            if (in_array($export['status'], ['done', 'failed', 'expired'], true)) {
                return $export;
            }
            if (microtime(true) > $deadline) {
                throw new StreamsError("The export $exportId did not finish in time.");
            }
            usleep((int) ($interval * 1_000_000));
        }
    }

    /** Save a finished export's MP4 to $path; the number of bytes written. */
    public function downloadExport(string $exportId, string $path): int
    {
        [$status, $body] = $this->send('GET', '/api/streams/exports/' . self::id($exportId) . '/file', null);
        if ($status >= 400) {
            throw self::error($status, $body);
        }
        $written = file_put_contents($path, $body);
        if ($written === false) {
            throw new StreamsError("Could not write $path.");
        }
        return $written;
    }

    // ------------------------------------------------------------ plumbing

    /** The decoded JSON answer (an empty array for 204); StreamsApiError when refused. */
    public function request(string $method, string $path, array|object|null $body = null): array
    {
        [$status, $text] = $this->send($method, $path, $body);
        if ($status >= 400) {
            throw self::error($status, $text);
        }
        if ($text === '') {
            return [];
        }
        $decoded = json_decode($text, true, 512, JSON_THROW_ON_ERROR);
        return is_array($decoded) ? $decoded : [];
    }

    /** @return array{0: int, 1: string} the status and the body */
    private function send(string $method, string $path, array|object|null $body): array
    {
        $headers = ['Authorization: Bearer ' . $this->token, 'Accept: application/json'];
        $options = ['method' => $method, 'ignore_errors' => true, 'timeout' => $this->timeout, 'follow_location' => 0];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
            $options['content'] = json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
        }
        $options['header'] = implode("\r\n", $headers);
        $context = stream_context_create(['http' => $options]);
        $text = @file_get_contents($this->baseUrl . $path, false, $context);
        $responseHeaders = function_exists('http_get_last_response_headers')
            ? (http_get_last_response_headers() ?? [])
            : ($http_response_header ?? []);
        if ($text === false || $responseHeaders === []) {
            throw new StreamsError("$method $path: the server could not be reached.");
        }
        // The last status line (after any 1xx answers).
        $status = 0;
        foreach ($responseHeaders as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $found) === 1) {
                $status = (int) $found[1];
            }
        }
        return [$status, $text];
    }

    private static function error(int $status, string $text): StreamsApiError
    {
        $problem = json_decode($text, true);
        $problem = is_array($problem) ? $problem : [];
        return new StreamsApiError($status, (string) ($problem['code'] ?? 'http_error'), (string) ($problem['detail'] ?? ''));
    }

    private static function id(string $id): string
    {
        // Ids are UUIDs (or a key's); refusing anything else keeps a caller's input out of the path.
        if (preg_match('/^[0-9A-Za-z-]{1,64}$/', $id) !== 1) {
            throw new \InvalidArgumentException("Not an id: $id");
        }
        return $id;
    }

    private static function iso(\DateTimeInterface $when): string
    {
        return $when->format('Y-m-d\TH:i:s.vP');
    }

    private static function range(?\DateTimeInterface $start, ?\DateTimeInterface $end): string
    {
        $query = [];
        if ($start !== null) {
            $query['start'] = self::iso($start);
        }
        if ($end !== null) {
            $query['end'] = self::iso($end);
        }
        return $query === [] ? '' : '?' . http_build_query($query);
    }
}

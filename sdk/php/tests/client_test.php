<?php
// The PHP client against a live server (run by tests/sdk/test_streams_sdk.py, or by hand):
//   PENTAD_URL=… PENTAD_OWNER_TOKEN=… PENTAD_STRANGER_TOKEN=… PENTAD_STRANGER_EMAIL=… php client_test.php
// Every check that fails is printed and the exit status is 1; the last line is a JSON summary of what it
// made, for the caller to check on the server.

declare(strict_types=1);

require __DIR__ . '/../src/StreamsClient.php';

use Pentad\Streams\StreamsApiError;
use Pentad\Streams\StreamsClient;

$failures = 0;

function check(bool $condition, string $what): void
{
    global $failures;
    if (!$condition) {
        $failures++;
        fwrite(STDERR, "FAILED: $what\n");
    }
}

/** The StreamsApiError $call throws (a failed check if it throws none). */
function refusal(callable $call, string $what): ?StreamsApiError
{
    try {
        $call();
    } catch (StreamsApiError $error) {
        return $error;
    }
    check(false, "$what was not refused");
    return null;
}

$env = static fn (string $name): string => getenv($name) !== false ? (string) getenv($name) : throw new RuntimeException("$name is not set");
$owner = new StreamsClient($env('PENTAD_URL'), $env('PENTAD_OWNER_TOKEN'));
$stranger = new StreamsClient($env('PENTAD_URL'), $env('PENTAD_STRANGER_TOKEN'));

// Cameras
$camera = $owner->createCamera('PHP yard', ['visibility' => 'private', 'recording_mode' => 'on_demand']);
check($camera['name'] === 'PHP yard' && $camera['role'] === 'owner' && $camera['live'] === false, 'create a camera');
$updated = $owner->updateCamera($camera['id'], ['name' => 'PHP back yard']);
check($updated['name'] === 'PHP back yard', 'rename it');
check($owner->getCamera($camera['id'])['name'] === 'PHP back yard', 'read it back');
check(in_array($camera['id'], array_column($owner->listCameras(), 'id'), true), 'it is listed');

// Keys: shown once, rotated, revoked
$key = $owner->createKey($camera['id'], 'encoder');
check(str_starts_with($key['key'], 'psk_') && str_starts_with($key['rtmp_url'], 'rtmp://'), 'a key is made');
$listed = $owner->listKeys($camera['id']);
check(count($listed) === 1 && !array_key_exists('key', $listed[0]) && $listed[0]['hint'] === substr($key['key'], -4), 'keys are listed without their secret');
$rotated = $owner->rotateKey($camera['id'], $key['id']);
check($rotated['key'] !== $key['key'] && $rotated['name'] === 'encoder', 'rotate the key');
$states = array_column($owner->listKeys($camera['id']), 'revoked_at', 'id');
check($states[$key['id']] !== null && $states[$rotated['id']] === null, 'the old key is revoked, the new one not');
$owner->revokeKey($camera['id'], $rotated['id']);
check(array_filter(array_column($owner->listKeys($camera['id']), 'revoked_at'), 'is_null') === [], 'revoke the new key');

// Playback tokens
$token = $owner->playbackToken($camera['id']);
check(str_starts_with($token['token'], 'psp_') && str_contains($token['urls']['hls'], $token['token']), 'a playback token');
check($owner->hlsUrl($camera['id'], $token['token']) === $token['urls']['hls'], 'the HLS URL is the server\'s');

// Recordings: start and stop on demand (the camera is offline: it records once it goes live), the timeline
$recording = $owner->startRecording($camera['id']);
check($recording['mode'] === 'on_demand' && $recording['ended_at'] === null, 'start recording on demand');
check($owner->startRecording($camera['id'])['id'] === $recording['id'], 'starting again changes nothing');
$owner->stopRecording($camera['id']);
$end = new DateTimeImmutable('now', new DateTimeZone('UTC'));
$timeline = $owner->timeline($camera['id'], $end->modify('-1 hour'), $end->modify('+1 minute'));
check(count($timeline['recordings']) === 1 && $timeline['recordings'][0]['ended_at'] !== null, 'the timeline shows the stopped recording');
check($timeline['spans'] === [] && $owner->segments($camera['id']) === [], 'nothing was recorded');
$empty = refusal(fn () => $owner->createExport($camera['id'], $end->modify('-10 minutes'), $end->modify('-9 minutes')), 'an export of nothing');
check($empty !== null && $empty->status >= 400 && $empty->status < 500, 'an export of an empty range is a 4xx');
check($owner->listExports($camera['id']) === [], 'and queues nothing');

// The deny side: someone else's private camera does not exist for them
$hidden = refusal(fn () => $stranger->getCamera($camera['id']), 'a stranger reading the camera');
check($hidden?->status === 404, 'a stranger gets 404');
$keys = refusal(fn () => $stranger->createKey($camera['id']), 'a stranger making a key');
check($keys !== null && in_array($keys->status, [403, 404], true), 'a stranger may not make a key');
$owner->grant($camera['id'], $env('PENTAD_STRANGER_EMAIL'), 'viewer');
check($stranger->getCamera($camera['id'])['role'] === 'viewer', 'shared as a viewer');
$viewer = refusal(fn () => $stranger->listKeys($camera['id']), 'a viewer listing keys');
check($viewer?->status === 403, 'a viewer may not see keys');
$grants = $owner->listGrants($camera['id']);
$strangerId = null;
foreach ($grants as $grant) {
    if ($grant['role'] === 'viewer') {
        $strangerId = $grant['user_id'];
    }
}
check($strangerId !== null, 'the grant is listed');
$owner->revokeGrant($camera['id'], (string) $strangerId);
check(refusal(fn () => $stranger->getCamera($camera['id']), 'the role taken')?->status === 404, 'the role is gone');

// Bad input: 422 problem+json, nothing changed
$bad = refusal(fn () => $owner->updateCamera($camera['id'], ['visibility' => 'everyone']), 'a bad visibility');
check($bad?->status === 422 && $bad->errorCode === 'validation_failed', 'bad input is a 422 validation_failed');
check($owner->getCamera($camera['id'])['visibility'] === 'private', 'and changes nothing');
$nobody = new StreamsClient($env('PENTAD_URL'), 'not-a-token');
check(refusal(fn () => $nobody->listCameras(), 'a bad token')?->status === 401, 'a bad token is a 401');

// A second camera, deleted
$other = $owner->createCamera('PHP shed');
$owner->deleteCamera($other['id']);
check(refusal(fn () => $owner->getCamera($other['id']), 'a deleted camera')?->status === 404, 'delete a camera');

echo json_encode(['camera_id' => $camera['id'], 'deleted_id' => $other['id'], 'failures' => $failures]), "\n";
exit($failures === 0 ? 0 : 1);

#!/bin/sh
# Renders k8s/cloudrun/service.yaml for `gcloud run services replace` (used by cloudbuild.yaml).
# Usage: render.sh IMAGE SERVICE PROJECT_ID PROJECT_NUMBER REGION BROKER_ACCOUNT_ID > rendered.yaml
# Each argument replaces the placeholder of the same name. Refuses (exit 2) an empty or unsafe
# argument, an image without an explicit tag or digest, and output with a placeholder left.
set -eu

if [ "$#" -ne 6 ]; then
  echo "usage: $0 IMAGE SERVICE PROJECT_ID PROJECT_NUMBER REGION BROKER_ACCOUNT_ID" >&2
  exit 2
fi
for value in "$@"; do
  case "$value" in
    "" | *[!A-Za-z0-9._:/@-]*)
      echo "render.sh: refusing argument '$value' (empty or unexpected characters)" >&2
      exit 2
      ;;
  esac
done
last_part=${1##*/}
case "$1" in
  *@sha256:*) ;;
  *)
    case "$last_part" in
      *:latest) echo "render.sh: image '$1': use the commit SHA tag, not latest" >&2; exit 2 ;;
      *:?*) ;;
      *) echo "render.sh: image '$1' has no tag" >&2; exit 2 ;;
    esac
    ;;
esac

template="$(dirname "$0")/service.yaml"
rendered=$(sed \
  -e "s|\bIMAGE\b|$1|g" \
  -e "s|\bSERVICE\b|$2|g" \
  -e "s|\bPROJECT_ID\b|$3|g" \
  -e "s|\bPROJECT_NUMBER\b|$4|g" \
  -e "s|\bREGION\b|$5|g" \
  -e "s|\bBROKER_ACCOUNT_ID\b|$6|g" \
  "$template")

leftover=$(printf '%s\n' "$rendered" | grep -v '^[[:space:]]*#' \
  | grep -E '\b(IMAGE|SERVICE|PROJECT_ID|PROJECT_NUMBER|REGION|BROKER_ACCOUNT_ID)\b' || true)
if [ -n "$leftover" ]; then
  echo "render.sh: placeholders left in the output:" >&2
  printf '%s\n' "$leftover" >&2
  exit 2
fi
printf '%s\n' "$rendered"

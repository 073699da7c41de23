#!/usr/bin/env bash
# Placeholder until the Whisper loader lands: nothing to fetch yet.
exit 0

#!/usr/bin/env bash
# Run by `make up` after `pulumi stack select --create`: keep the local stack's encryptionsalt out of git
# (.gitattributes says why). Registers the filter, then, when the filtered stack file is the committed one (only
# the salt was added), adds it again: git decides that a file whose size changed is modified without running the
# filter, and re-adding it stages nothing but tells git so. Outside a git work tree it does nothing.
set -euo pipefail
stack_file="stacks/Pulumi.${1:?usage: stack-file-clean.sh STACK}.yaml"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || exit 0
git config filter.pulumi-local-salt.clean "sed -e '/^encryptionsalt: /d'"
git config filter.pulumi-local-salt.smudge cat
# Tracked files only: a stack file Pulumi has just created is the person's to add, or not.
if git ls-files --error-unmatch -- "$stack_file" >/dev/null 2>&1 && git diff --quiet -- "$stack_file"; then
    git add -- "$stack_file"
fi

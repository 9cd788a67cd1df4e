"""One release version stamped into every manifest: conversion (convert), where it lives (places), edits (stamp)."""

/**
 * The block planner is pure: these tests drive it with a block-size rule and check the blocks it
 * cuts, how it re-cuts a failed range, and the lists it builds for resume and commit.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeBlockId, encodeBlockId } from '../../src/upload/block-id.js';
import { LinkController, MAX_COMMITTED_BLOCKS, MAX_PLANNED_BLOCKS } from '../../src/upload/link-controller.js';
import { BlockPlanner, blockIdOf, blockListXml, commitOrder, gaps, resumeCandidates, type AckedBlock, type PlannedBlock } from '../../src/upload/planner.js';
import { KIB, MIB } from './helpers.js';

const fixed = (bytes: number) => () => bytes;

function cutAll(planner: BlockPlanner, bytes: number, epoch = 0): PlannedBlock[] {
  const out: PlannedBlock[] = [];
  while (planner.hasPending) out.push(planner.cut(fixed(bytes), epoch));
  return out;
}

function id(offset: number, length: number, seed = 'x'): string {
  return encodeBlockId({ offset, length, digest: createHash('md5').update(seed).digest(), algorithm: 'md5' });
}

describe('block planner', () => {
  it('finds the gaps between acknowledged blocks, in any order, overlaps included', () => {
    expect(gaps([], 10)).toEqual([{ offset: 0, length: 10, attempts: 0 }]);
    expect(gaps([{ offset: 6, length: 2 }, { offset: 0, length: 3 }], 10)).toEqual([
      { offset: 3, length: 3, attempts: 0 },
      { offset: 8, length: 2, attempts: 0 },
    ]);
    expect(gaps([{ offset: 0, length: 6 }, { offset: 4, length: 6 }], 10)).toEqual([]);
    expect(gaps([], 0)).toEqual([]);
  });

  it('cuts ranges into blocks of the size asked for and folds a small tail into the last block', () => {
    const planner = new BlockPlanner(256 * KIB);
    planner.plan([{ offset: 0, length: 3 * MIB + 100 * KIB, attempts: 0 }]);
    expect(planner.remainingBytes).toBe(3 * MIB + 100 * KIB);
    const blocks = cutAll(planner, MIB, 3);
    // 100 KiB is under the 256 KiB floor: folded into the third block rather than sent alone.
    expect(blocks.map((b) => [b.offset, b.length, b.index, b.epoch])).toEqual([
      [0, MIB, 0, 3],
      [MIB, MIB, 1, 3],
      [2 * MIB, MIB + 100 * KIB, 2, 3],
    ]);
    expect(planner.remainingBytes).toBe(0);
    // A tail of at least min(floor, a quarter of the block) is a block of its own.
    planner.plan([{ offset: 0, length: MIB + 256 * KIB, attempts: 0 }]);
    expect(cutAll(planner, MIB).map((b) => [b.offset, b.length, b.index])).toEqual([
      [0, MIB, 3],
      [MIB, 256 * KIB, 4],
    ]);
  });

  it('passes what is left and the blocks listed so far to the size rule', () => {
    const planner = new BlockPlanner(1);
    planner.plan([{ offset: 0, length: 100, attempts: 0 }, { offset: 200, length: 50, attempts: 0 }]);
    const seen: Array<[number, number]> = [];
    while (planner.hasPending) planner.cut((remaining, cut) => (seen.push([remaining, cut]), 40), 0);
    expect(seen).toEqual([
      [150, 0],
      [110, 1],
      [70, 2],
      [50, 3],
      [10, 4],
    ]);
  });

  it('re-cuts a failed block at the current size: its failures stay with its first bytes, the rest start at none', () => {
    const planner = new BlockPlanner(64 * KIB);
    planner.plan([{ offset: 0, length: 4 * MIB, attempts: 0 }]);
    const [first, second] = [planner.cut(fixed(MIB), 0), planner.cut(fixed(MIB), 0)];
    // The second block fails once, the first twice; they go back in offset order.
    planner.requeue({ offset: second!.offset, length: second!.length, attempts: 1 });
    planner.requeue({ offset: first!.offset, length: first!.length, attempts: 2 });
    // The link shrank meanwhile: blocks of 512 KiB now.
    const next = [planner.cut(fixed(512 * KIB), 1), planner.cut(fixed(512 * KIB), 1), planner.cut(fixed(512 * KIB), 1)];
    expect(next.map((b) => [b.offset, b.length, b.attempts])).toEqual([
      [0, 512 * KIB, 2],
      [512 * KIB, 512 * KIB, 0],
      [MIB, 512 * KIB, 1],
    ]);
    const rest = cutAll(planner, 512 * KIB, 1);
    expect(rest.map((b) => [b.offset, b.attempts])).toEqual([
      [MIB + 512 * KIB, 0],
      [2 * MIB, 0],
      [2 * MIB + 512 * KIB, 0],
      [3 * MIB, 0],
      [3 * MIB + 512 * KIB, 0],
    ]);
    // Every byte exactly once.
    const all = [...next, ...rest].sort((a, b) => a.offset - b.offset);
    expect(gaps(all, 4 * MIB)).toEqual([]);
    expect(all.reduce((n, b) => n + b.length, 0)).toBe(4 * MIB);
  });

  it('counts blocks kept from an earlier run, and not failed blocks, among those listed', () => {
    const planner = new BlockPlanner(1);
    const seen: number[] = [];
    const rule = (_: number, listed: number) => (seen.push(listed), 10);
    planner.plan([{ offset: 30, length: 30, attempts: 0 }], 3);
    const [a] = [planner.cut(rule, 0), planner.cut(rule, 0)];
    // A failed block is cut again: it is listed once, not twice.
    planner.requeue({ offset: a!.offset, length: a!.length, attempts: 1 });
    while (planner.hasPending) planner.cut(rule, 0);
    expect(seen).toEqual([3, 4, 4, 5]);
    expect(planner.blocksListed).toBe(6);
    // Staging everything again (another upload's commit discarded it all): only the new blocks count.
    planner.plan([{ offset: 0, length: 20, attempts: 0 }]);
    seen.length = 0;
    while (planner.hasPending) planner.cut(rule, 0);
    expect(seen).toEqual([0, 1]);
  });

  it('cuts a resumed upload so that the commit, kept blocks included, stays within 50,000 blocks', () => {
    // As the driver does: the planner with the link controller's sizes, on a link that keeps
    // blocks at 2 MiB (slow, or resetting), for 150 GiB: more than 50,000 blocks of 2 MiB.
    const size = 150 * 1024 * MIB;
    const run = (acked: AckedBlock[], kept: number) => {
      const link = new LinkController({
        initialBlockBytes: 2 * MIB,
        minBlockBytes: 256 * KIB,
        maxBlockBytes: 2 * MIB,
        maxConcurrency: 8,
        targetBlockDurationMs: 8000,
        onBlockSize: () => {},
        onConcurrency: () => {},
      });
      const planner = new BlockPlanner(256 * KIB);
      planner.plan(gaps(acked, size), kept);
      const cut: AckedBlock[] = [];
      while (planner.hasPending) {
        const b = planner.cut((remaining, listed) => link.nextBlockBytes(remaining, listed), link.epoch);
        cut.push({ id: String(b.index), offset: b.offset, length: b.length });
      }
      return cut;
    };
    const first = run([], 0);
    expect(first.length).toBeLessThanOrEqual(MAX_COMMITTED_BLOCKS);
    // The first run died after 20,000 blocks were acknowledged; the second resumes from them.
    const journaled = first.slice(0, 20_000);
    const second = run(journaled, journaled.length);
    const committed = commitOrder([...journaled, ...second], size);
    expect(committed.complete).toBe(true);
    expect(committed.blocks.length).toBeLessThanOrEqual(MAX_COMMITTED_BLOCKS);
    // The rest, 46,070 blocks at 2 MiB, takes every block left and no more: blocks only as large as they must be.
    expect(second.length).toBe(MAX_PLANNED_BLOCKS - journaled.length);
  });

  it('refuses to cut when nothing is pending', () => {
    expect(() => new BlockPlanner(1).cut(fixed(1), 0)).toThrow(/nothing pending/);
  });

  it('names a block by offset, length and digest', () => {
    const digest = createHash('md5').update('abc').digest();
    const blockId = blockIdOf({ offset: 5 * MIB, length: MIB }, digest, 'md5');
    expect(decodeBlockId(blockId)).toMatchObject({ offset: 5 * MIB, length: MIB, algorithm: 'md5' });
    expect(decodeBlockId(blockId)!.digest.equals(digest)).toBe(true);
  });

  it('orders resume candidates by offset, longest first, without foreign, empty, duplicate or out-of-range ids', () => {
    const ids = [id(MIB, MIB), id(0, MIB), id(0, 2 * MIB), id(0, MIB), 'c2hvcnQ=', id(3 * MIB, MIB), id(MIB, 0)];
    const out = resumeCandidates(ids, 3 * MIB);
    expect(out.map((c) => [c.ref.offset, c.ref.length])).toEqual([
      [0, 2 * MIB],
      [0, MIB],
      [MIB, MIB],
    ]);
    expect(out[0]!.id).toBe(id(0, 2 * MIB));
  });

  it('commits only a list that tiles the payload, in offset order, as <Latest> entries', () => {
    const a = { id: 'QQ==', offset: 0, length: 3 };
    const b = { id: 'Qg==', offset: 3, length: 4 };
    expect(commitOrder([b, a], 7)).toEqual({ blocks: [a, b], coveredBytes: 7, complete: true });
    expect(commitOrder([b], 7)).toMatchObject({ coveredBytes: 0, complete: false });
    expect(commitOrder([a, b], 8)).toMatchObject({ coveredBytes: 7, complete: false });
    expect(commitOrder([], 0)).toMatchObject({ complete: true });
    expect(blockListXml([a, b])).toBe('<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QQ==</Latest><Latest>Qg==</Latest></BlockList>');
  });
});

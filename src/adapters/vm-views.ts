/**
 * VM reads in an alert storm: one list of the subscription's VMs with their status in place of
 * a GET per VM.
 *
 * Each remediation starts by reading its VM (power state, agent, OS, tags). In a storm that is
 * one ARM read per VM, at ARM's 25 reads/s per subscription. `virtualMachines.listAll` with
 * `statusOnly=true` returns the subscription's VMs with their instance views, about a hundred
 * a page, so when many VMs of one subscription are read within a short time this batcher reads
 * them all in a few pages and answers from that listing for `ttlMs`.
 *
 * - A lone read (fewer than `listThreshold` reads of the subscription within `ttlMs`) stays one
 *   GET: listing a large subscription for one VM would cost more reads, not fewer.
 * - A VM the listing does not show, or shows without what a view needs (no instance view, no
 *   OS), is read with a GET. So is a scale set VM (not in these lists), and any VM when the
 *   listing fails.
 * - A listed view is at most `ttlMs` old. That is enough for eligibility: a VM that stopped
 *   since fails its Run Command with a clear error, and what the fix is judged on comes from
 *   the VM itself, never from this view.
 */
import type { VmRef } from '../core/resource-id.js';
import type { VmView } from '../core/vm.js';

/** A listed VM, turned into a view for the ref that asked; null when the listing lacks what a view needs. */
export type ListedVm = (ref: VmRef) => VmView | null;

export interface VmViewSource {
  /** One VM, with its instance view (GET …/virtualMachines/{name}?$expand=instanceView). */
  getOne(ref: VmRef): Promise<VmView>;
  /** Every VM of the subscription with its status, by lower-case resource ID. */
  listSubscription(subscriptionId: string): Promise<ReadonlyMap<string, ListedVm>>;
}

export interface VmViewBatchOptions {
  /** Reads of one subscription within ttlMs from which a list replaces single GETs; 0 turns listing off. */
  readonly listThreshold: number;
  /** How long a listing answers reads. */
  readonly ttlMs: number;
  /** How long a read waits for others to join it before the batcher decides. Default 25 ms. */
  readonly windowMs?: number;
  readonly now?: () => number;
}

export interface VmViewStats {
  readonly gets: number;
  readonly lists: number;
  readonly listed: number;
  readonly fromListing: number;
}

interface Waiting {
  readonly ref: VmRef;
  readonly resolve: (view: VmView) => void;
  readonly reject: (error: unknown) => void;
}

interface SubscriptionState {
  listing: { readonly vms: ReadonlyMap<string, ListedVm>; readonly at: number } | null;
  inFlight: Promise<void> | null;
  /** When recent reads of this subscription were asked for (within ttlMs). */
  readonly asked: number[];
  waiting: Waiting[];
  timer: ReturnType<typeof setTimeout> | null;
}

export class VmViewBatcher {
  private readonly subscriptions = new Map<string, SubscriptionState>();
  private readonly counts = { gets: 0, lists: 0, listed: 0, fromListing: 0 };

  public constructor(
    private readonly source: VmViewSource,
    private readonly options: VmViewBatchOptions,
  ) {}

  public get stats(): VmViewStats {
    return { ...this.counts };
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  public get(ref: VmRef): Promise<VmView> {
    if (ref.kind !== 'vm' || this.options.listThreshold <= 0) return this.getOne(ref);
    const state = this.state(ref.subscriptionId);
    const now = this.now();
    state.asked.push(now);
    while (state.asked.length > 0 && (state.asked[0] ?? now) < now - this.options.ttlMs) state.asked.shift();
    const listed = this.fromListing(state, ref, now);
    if (listed) return Promise.resolve(listed);
    return new Promise<VmView>((resolve, reject) => {
      state.waiting.push({ ref, resolve, reject });
      if (state.inFlight) return; // answered when the listing in flight lands
      state.timer ??= setTimeout(() => this.decide(ref.subscriptionId), this.options.windowMs ?? 25);
    });
  }

  private state(subscriptionId: string): SubscriptionState {
    const key = subscriptionId.toLowerCase();
    let state = this.subscriptions.get(key);
    if (!state) {
      state = { listing: null, inFlight: null, asked: [], waiting: [], timer: null };
      this.subscriptions.set(key, state);
    }
    return state;
  }

  private fromListing(state: SubscriptionState, ref: VmRef, now: number): VmView | null {
    if (!state.listing || now - state.listing.at >= this.options.ttlMs) return null;
    const view = state.listing.vms.get(ref.key)?.(ref) ?? null;
    if (view) this.counts.fromListing++;
    return view;
  }

  private getOne(ref: VmRef): Promise<VmView> {
    this.counts.gets++;
    return this.source.getOne(ref);
  }

  /** After the window: list the subscription when it is read often enough, else read each VM. */
  private decide(subscriptionId: string): void {
    const state = this.state(subscriptionId);
    state.timer = null;
    const waiting = state.waiting;
    state.waiting = [];
    if (state.asked.length < this.options.listThreshold) {
      for (const w of waiting) this.getOne(w.ref).then(w.resolve, w.reject);
      return;
    }
    state.waiting = waiting;
    this.counts.lists++;
    state.inFlight = this.source.listSubscription(subscriptionId).then(
      (vms) => {
        this.counts.listed += vms.size;
        state.listing = { vms, at: this.now() };
      },
      () => {
        state.listing = null; // a failed listing: every waiting VM gets its own GET below
      },
    );
    void state.inFlight.then(() => {
      state.inFlight = null;
      const answered = state.waiting;
      state.waiting = [];
      const now = this.now();
      for (const w of answered) {
        const view = this.fromListing(state, w.ref, now);
        if (view) w.resolve(view);
        else this.getOne(w.ref).then(w.resolve, w.reject);
      }
    });
  }
}

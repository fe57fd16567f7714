using System.Numerics;
using System.Text;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// Emits the PTX of the int4wo-G decode GEMV on tensor cores: y[n] = Σ_k x[k]·((q[n, k] − 8)·s[n, g] + z[n, g]) with
/// the weights in the device layout of <see cref="Kernels.Int4GroupedGemv"/> (a row-major nibble stream, bf16
/// scale/zero pairs [N, K/G]), for K a multiple of 128.
/// <para>The nibbles become bf16 with one mask-or each, (w &gt;&gt; 4i) &amp; 0x000F000F | 0x43004300 = the pair
/// (128 + q, 128 + q') exactly, and go into <c>mma.sync.m16n8k16.bf16</c> as A (16 weight rows × 16 k); B's column 0
/// is x rounded to bf16 and column 1 the rest, x − hi rounded to bf16 (together 16 significant bits, so the dot
/// product keeps about f32 accuracy; columns 2..7 are not read). Per group: s·(D − 136·Σx) + z·Σx, with D the mma's
/// sum over the group (in f32) and Σx the sum of the same hi + lo values, so the 128 offset and the −8 cancel.
/// Per weight that is about one integer op, a sixteenth of an mma and the per-group scaling (the SIMT kernel
/// needs three ops a weight).</para>
/// <para>Work: a block is one row set (32 rows of one matrix, or 16 gate and 16 up rows) and S warps that split K in
/// 128-element blocks; warp w takes blocks w, w + S, ... of the B = K/128. Each warp streams its blocks through
/// a ring of shared-memory slots with cp.async (the 32 rows' 64 bytes, their scale words, 128 floats of x; one commit
/// group a block, stages − 1 blocks in flight while one is computed), so the loads in flight cost no registers: the
/// register-staged version of this kernel spilled at three stages and reached 1.7 TB/s at two. Within a block lane
/// (g, t) = (lane / 4, lane % 4) reads rows g and g + 8 of each 16-row tile: V = min(4, G/32) words at word V·t of
/// each 16V-byte segment, so the four lanes of a quad cover a segment and every mma (one word of each lane) stays
/// inside one group. Word j of lane t holds k = 8(Vt + j) + 0..7 of its segment; its pairs (0, 4) and (1, 5) are
/// a0/a2 of one mma, (2, 6) and (3, 7) of the next. The warp turns the block's x into those B fragments in its slot
/// (one shared-memory round trip). The warps' row sums meet in shared memory; the first 32 (or 16, gated) threads
/// write y.</para>
/// Work at 14336×4096, G = 64: 29.4 MB of nibbles + 3.7 MB of scales read once: floor 11.1 us at 2.97 TB/s.
/// Measured: docs/gpu.md (lowbit selftest --device cuda --bench).
/// </summary>
public static class Int4MmaGemvPtx
{
    /// <summary>Most warps a block splits K over (threads = 32·S).</summary>
    public const int MaxSplit = 16;

    /// <summary>Dynamic shared memory a block of <paramref name="split"/> warps needs: each warp's ring of slots, then
    /// 128 bytes a warp where the row sums meet.</summary>
    public static int SharedBytes(int groupSize, int stages, int split) => split * (stages * new Slot(groupSize).Bytes + 128);

    /// <summary>One 128-k block of a warp's ring in shared memory: the 32 rows' 64 bytes of nibbles (rows 80 bytes
    /// apart, so the lanes' reads spread over the banks), their scale words, the 128 floats of x, and B's hi/lo
    /// fragments made from them (written and read while the block is computed).</summary>
    private readonly record struct Slot(int GroupSize)
    {
        public const int RowStride = 80;

        public int Scales => 32 * RowStride;

        public int X => Scales + 32 * 4 * Math.Max(1, 128 / GroupSize);

        public int B => X + 512;

        public int Bytes => B + 512;
    }

    public static string Entry(int groupSize, int stages) => $"lowbit_int4_mma_gemv_g{groupSize}_s{stages}";

    /// <summary>The module for int4wo-<paramref name="groupSize"/> (32, 64, 128 or 256) with the loads of
    /// <paramref name="stages"/> − 1 blocks in flight ahead of the one computed (2..4).</summary>
    public static string Module(int groupSize, int stages)
    {
        if (groupSize is not (32 or 64 or 128 or 256))
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "int4wo group sizes are 32, 64, 128 and 256.");
        if (stages is < 2 or > 4)
            throw new ArgumentOutOfRangeException(nameof(stages), stages, "2 to 4 stages.");
        return new StringBuilder()
            .Append("// Lowbit int4wo-").Append(groupSize).Append(" GEMV on tensor cores, emitted by Lowbit.Cuda.Ptx.Int4MmaGemvPtx\n")
            .Append(".version 7.8\n.target sm_80\n.address_size 64\n\n")
            .Append(".extern .shared .align 16 .b8 int4_smem[];\n\n")
            .Append(Gemv(groupSize, stages))
            .ToString();
    }

    private static string Gemv(int groupSize, int stages)
    {
        var w = new PtxWriter();
        int v = Math.Min(4, groupSize / 32), segments = 4 / v, groupShift = BitOperations.Log2((uint)groupSize);
        // Each parameter is declared where it is loaded, so the entry's parameter list is this order (the order
        // Int4MmaGemv.Launch passes them in): the GEMV's, then ResidualNorm's and InputScale's.
        var parameters = new List<string>();
        string Param(string type, string name, string? reg = null)
        {
            parameters.Add($".param .{type} p_{name}");
            string r = w.Reg(type switch { "u64" => ".b64", "f32" => ".f32", _ => ".b32" }, reg ?? name);
            w.Op($"ld.param.{type} {r}, [p_{name}]");
            return r;
        }
        string[] wp = new[] { "w0", "w1", "w2" }.Select(n => Param("u64", n)).ToArray();
        string[] sp = new[] { "s0", "s1", "s2" }.Select(n => Param("u64", n)).ToArray();
        string[] yp = new[] { "y0", "y1", "y2" }.Select(n => Param("u64", n)).ToArray();
        string x = Param("u64", "x");
        string[] np = new[] { "n0", "n1", "n2" }.Select(n => Param("u32", n)).ToArray();
        string gated = Param("u32", "gated"), k = Param("u32", "k"), split = Param("u32", "split");
        string residual = Param("u64", "residual"), gainPointer = Param("u64", "gain", "gain_pointer"), normed = Param("u64", "normed");
        string normSums = Param("u64", "norm_sums"), normNext = Param("u64", "norm_next"), normFlag = Param("u32", "norm_on", "norm_flag");
        string inputSums = Param("u64", "input_sums"), inWidth = Param("f32", "input_width", "in_width"), inEps = Param("f32", "input_eps", "in_eps");
        string inputFlag = Param("u32", "input_on", "input_flag");
        foreach (string pointer in wp.Concat(sp).Concat(yp).Append(x))
            w.Op($"cvta.to.global.u64 {pointer}, {pointer}");
        string normOn = w.Reg(".pred", "norm_on"), inputOn = w.Reg(".pred", "input_on"), inputSlot = w.Reg(".f64", "input_slot");
        w.Op($"setp.ne.u32 {normOn}, {normFlag}, 0");
        w.Op($"setp.ne.u32 {inputOn}, {inputFlag}, 0");
        // A folded norm's pointers are only read when it is on (they are 0 otherwise).
        foreach (string pointer in new[] { residual, gainPointer, normed, normSums, normNext })
            w.Op($"@{normOn} cvta.to.global.u64 {pointer}, {pointer}");
        w.Op($"@{inputOn} cvta.to.global.u64 {inputSums}, {inputSums}");

        string thread = w.Reg(".b32", "thread"), lane = w.Reg(".b32", "lane"), warp = w.Reg(".b32", "warp");
        string g = w.Reg(".b32", "g"), q = w.Reg(".b32", "q"), set = w.Reg(".b32", "set"), tmp = w.Reg(".b32", "tmp");
        w.Op($"mov.u32 {thread}, %tid.x");
        w.Op($"and.b32 {lane}, {thread}, 31");
        w.Op($"shr.u32 {warp}, {thread}, 5");
        w.Op($"shr.u32 {g}, {lane}, 2");
        w.Op($"and.b32 {q}, {lane}, 3");
        w.Op($"mov.u32 {set}, %ctaid.x");
        // This lane's slot of the input's norm sums, loaded now so the load overlaps the main loop.
        string slotAddress = w.Reg(".b64", "slot_address");
        w.Op($"mov.f64 {inputSlot}, 0d0000000000000000");
        w.Op($"mul.wide.u32 {slotAddress}, {lane}, 8");
        w.Op($"add.s64 {slotAddress}, {slotAddress}, {inputSums}");
        w.Op($"@{inputOn} ld.global.f64 {inputSlot}, [{slotAddress}]");

        w.Comment("the block's row set: 32 rows of q, k or v (or one weight), or 16 rows of gate and of up");
        string sets0 = w.Reg(".b32", "sets0"), sets01 = w.Reg(".b32", "sets01"), notFirst = w.Reg(".pred", "not_first");
        string third = w.Reg(".pred", "third"), isGated = w.Reg(".pred", "is_gated");
        string count = w.Reg(".b32", "rows"), first = w.Reg(".b32", "first");
        string wa = w.Reg(".b64", "wa"), wb = w.Reg(".b64", "wb"), sa = w.Reg(".b64", "sa"), sb = w.Reg(".b64", "sb"), y = w.Reg(".b64", "y");
        w.Op($"add.s32 {sets0}, {np[0]}, 31");
        w.Op($"shr.u32 {sets0}, {sets0}, 5");
        w.Op($"add.s32 {sets01}, {np[1]}, 31");
        w.Op($"shr.u32 {sets01}, {sets01}, 5");
        w.Op($"add.s32 {sets01}, {sets01}, {sets0}");
        w.Op($"setp.ge.u32 {notFirst}, {set}, {sets0}");
        w.Op($"setp.ge.u32 {third}, {set}, {sets01}");
        w.Op($"setp.ne.u32 {isGated}, {gated}, 0");
        // Matrix m's rows, count, pointers and output, from row (set − setsBefore)·2^shift, under guard.
        void Take(string guard, int m, string? setsBefore, int shift)
        {
            w.Op($"{guard}mov.b32 {count}, {np[m]}");
            w.Op($"{guard}mov.b64 {wa}, {wp[m]}");
            w.Op($"{guard}mov.b64 {sa}, {sp[m]}");
            w.Op($"{guard}mov.b64 {y}, {yp[m]}");
            if (setsBefore is not null)
                w.Op($"{guard}sub.s32 {tmp}, {set}, {setsBefore}");
            w.Op($"{guard}shl.b32 {first}, {(setsBefore is null ? set : tmp)}, {shift}");
        }
        Take("", 0, null, 5);
        Take($"@{notFirst} ", 1, sets0, 5);
        Take($"@{third} ", 2, sets01, 5);
        w.Op($"mov.b64 {wb}, {wa}");
        w.Op($"mov.b64 {sb}, {sa}");
        // Gated: gate rows (matrix 0) in tile 0, the same rows of up (matrix 1) in tile 1, 16 a set.
        Take($"@{isGated} ", 0, null, 4);
        w.Op($"@{isGated} mov.b64 {wb}, {wp[1]}");
        w.Op($"@{isGated} mov.b64 {sb}, {sp[1]}");

        // Tile r's rows g and g + 8 (h = 0, 1), clamped to the last row so every copy stays inside the weight; lane t
        // copies bytes [16t, 16t + 16) of each of its four rows' 64-byte block, and the scale words of one row.
        w.Comment("global sources: this lane's four weight rows, one scale row, its 16 bytes of x");
        string last = w.Reg(".b32", "last"), row = w.Reg(".b32", "row"), rowBytes = w.Reg(".b32", "row_bytes");
        string groups = w.Reg(".b32", "groups"), wide = w.Reg(".b64", "wide"), tileOffset = w.Reg(".b32", "tile_offset");
        string[] weightRow = w.Regs(".b64", "wrow", 4);
        string scaleRow = w.Reg(".b64", "srow"), xRow = w.Reg(".b64", "xrow"), isSecond = w.Reg(".pred", "is_second");
        w.Op($"add.s32 {last}, {count}, -1");
        w.Op($"shr.u32 {rowBytes}, {k}, 1");
        w.Op($"shr.u32 {groups}, {k}, {groupShift}");
        w.Op($"selp.b32 {tileOffset}, 0, 16, {isGated}");
        w.Op($"shl.b32 {tmp}, {q}, 4");
        w.Op($"cvt.u64.u32 {wide}, {tmp}");
        for (int i = 0; i < 4; i++)
        {
            w.Op($"add.s32 {row}, {first}, {g}");
            if (i % 2 == 1)
                w.Op($"add.s32 {row}, {row}, 8");
            if (i >= 2)
                w.Op($"add.s32 {row}, {row}, {tileOffset}");
            w.Op($"min.s32 {row}, {row}, {last}");
            w.Op($"mul.wide.u32 {weightRow[i]}, {row}, {rowBytes}");
            w.Op($"add.s64 {weightRow[i]}, {weightRow[i]}, {(i < 2 ? wa : wb)}");
            w.Op($"add.s64 {weightRow[i]}, {weightRow[i]}, {wide}");
        }
        // Lane t copies the scales of row 16(t / 2) + 8(t % 2) + g of the set (tile t / 2, half t % 2).
        w.Op($"add.s32 {row}, {first}, {g}");
        w.Op($"and.b32 {tmp}, {q}, 1");
        w.Op($"mad.lo.s32 {row}, {tmp}, 8, {row}");
        w.Op($"setp.ge.u32 {isSecond}, {q}, 2");
        w.Op($"@{isSecond} add.s32 {row}, {row}, {tileOffset}");
        w.Op($"min.s32 {row}, {row}, {last}");
        w.Op($"mul.wide.u32 {scaleRow}, {row}, {groups}");
        w.Op($"shl.b64 {scaleRow}, {scaleRow}, 2");
        w.Op($"selp.b64 {wide}, {sb}, {sa}, {isSecond}");
        w.Op($"add.s64 {scaleRow}, {scaleRow}, {wide}");
        w.Op($"mul.wide.u32 {xRow}, {lane}, 16");
        w.Op($"add.s64 {xRow}, {xRow}, {x}");

        // Warp w takes 128-k blocks w, w + S, w + 2S, ...: the block's warps, running side by side, read S·64
        // consecutive bytes of each row at a time (a warp each taking a contiguous slice read 64-byte pieces of
        // rows far apart, and the kernel stayed at 1.5 TB/s).
        w.Comment("this warp's 128-k blocks: warp, warp + split, ... below end");
        string end = w.Reg(".b32", "end"), step = w.Reg(".b32", "step");
        w.Op($"shr.u32 {end}, {k}, 7");

        var slot = new Slot(groupSize);
        w.Comment($"shared memory: this warp's {stages} slots of {slot.Bytes} bytes; where this lane copies, reads and writes");
        string shared = w.Reg(".b32", "shared"), warpBase = w.Reg(".b32", "warp_base");
        string copyWeights = w.Reg(".b32", "copy_w"), copyScales = w.Reg(".b32", "copy_s"), copyX = w.Reg(".b32", "copy_x");
        string readWeights = w.Reg(".b32", "read_w"), readScales = w.Reg(".b32", "read_s"), readX = w.Reg(".b32", "read_x");
        string writeB = w.Reg(".b32", "write_b"), readB = w.Reg(".b32", "read_b"), isLo = w.Reg(".pred", "is_lo");
        w.Op($"mov.u32 {shared}, int4_smem");
        w.Op($"mad.lo.s32 {warpBase}, {warp}, {stages * slot.Bytes}, {shared}");
        w.Op($"mad.lo.s32 {copyWeights}, {g}, {Slot.RowStride}, {warpBase}");
        w.Op($"shl.b32 {tmp}, {q}, 4");
        w.Op($"add.s32 {copyWeights}, {copyWeights}, {tmp}");
        w.Op($"and.b32 {tmp}, {q}, 1");
        w.Op($"shl.b32 {tmp}, {tmp}, 3");
        w.Op($"add.s32 {tmp}, {tmp}, {g}");
        w.Op($"selp.b32 {row}, 16, 0, {isSecond}");
        w.Op($"add.s32 {tmp}, {tmp}, {row}");
        w.Op($"mad.lo.s32 {copyScales}, {tmp}, {4 * segments}, {warpBase}");
        w.Op($"add.s32 {copyScales}, {copyScales}, {slot.Scales}");
        w.Op($"shl.b32 {tmp}, {lane}, 4");
        w.Op($"add.s32 {copyX}, {warpBase}, {tmp}");
        w.Op($"add.s32 {copyX}, {copyX}, {slot.X}");
        // Lane (g, t) reads word V·t of each segment of its rows, and its rows' scale words.
        w.Op($"mad.lo.s32 {readWeights}, {g}, {Slot.RowStride}, {warpBase}");
        w.Op($"shl.b32 {tmp}, {q}, {BitOperations.Log2((uint)(4 * v))}");
        w.Op($"add.s32 {readWeights}, {readWeights}, {tmp}");
        w.Op($"mad.lo.s32 {readScales}, {g}, {4 * segments}, {warpBase}");
        w.Op($"add.s32 {readScales}, {readScales}, {slot.Scales}");
        // x pairs: lane l converts floats 8(l / 2) + 2(l & 1) + {0, 1} and the same + 4, and writes pairs
        // 2(l & 1), 2(l & 1) + 1 of 8-k group l / 2 into B's region (hi at +0, lo at +256).
        w.Op($"shr.u32 {tmp}, {lane}, 1");
        w.Op($"shl.b32 {tmp}, {tmp}, 5");
        w.Op($"and.b32 {row}, {lane}, 1");
        w.Op($"shl.b32 {row}, {row}, 3");
        w.Op($"add.s32 {tmp}, {tmp}, {row}");
        w.Op($"add.s32 {readX}, {warpBase}, {tmp}");
        w.Op($"add.s32 {readX}, {readX}, {slot.X}");
        w.Op($"shr.u32 {tmp}, {lane}, 1");
        w.Op($"shl.b32 {tmp}, {tmp}, 4");
        w.Op($"add.s32 {tmp}, {tmp}, {row}");
        w.Op($"add.s32 {writeB}, {warpBase}, {tmp}");
        w.Op($"add.s32 {writeB}, {writeB}, {slot.B}");
        // Column g of B is hi for g = 0 and lo for g = 1 (the others are not read: hi); 8-k group 4V·s + V·t + j.
        w.Op($"setp.eq.u32 {isLo}, {g}, 1");
        w.Op($"selp.b32 {tmp}, 256, 0, {isLo}");
        w.Op($"add.s32 {readB}, {warpBase}, {tmp}");
        w.Op($"shl.b32 {tmp}, {q}, {BitOperations.Log2((uint)(16 * v))}");
        w.Op($"add.s32 {readB}, {readB}, {tmp}");
        w.Op($"add.s32 {readB}, {readB}, {slot.B}");

        string[] acc = w.Regs(".f32", "acc", 4), d = w.Regs(".f32", "d", 4), zero = w.Regs(".f32", "zero", 4);
        foreach (string r in acc.Concat(zero))
            w.Op($"mov.f32 {r}, 0f00000000");
        string address = w.Reg(".b64", "address"), blockOffset = w.Reg(".b64", "block_offset");
        string loadBlock = w.Reg(".b32", "load_block"), b = w.Reg(".b32", "b"), more = w.Reg(".pred", "more"), loading = w.Reg(".pred", "loading");

        // Block loadBlock's weights, scales and x into slot p by cp.async (one commit group a block, empty past the end).
        // The weights' copies ask L2 for the whole 128-byte line (.L2::128B): a row's 64 bytes of this block share it
        // with the next block's, which warp w + 1 of this CTA reads at about the same time (H100: int4wo-64 decode
        // 364 → 378 tok/s; 256B and the same hint on the scale words did not help).
        void Copy(int p)
        {
            int at = p * slot.Bytes;
            w.Op($"mul.wide.u32 {blockOffset}, {loadBlock}, 64");
            for (int i = 0; i < 4; i++)
            {
                w.Op($"add.s64 {address}, {weightRow[i]}, {blockOffset}");
                w.Op($"@{loading} cp.async.cg.shared.global.L2::128B [{Address(copyWeights, at + (16 * (i / 2) + 8 * (i % 2)) * Slot.RowStride)}], [{address}], 16");
            }
            // Scale words of block b: from b·128/G (G = 256: every other block copies the same word).
            w.Op($"shl.b32 {tmp}, {loadBlock}, 7");
            w.Op($"shr.u32 {tmp}, {tmp}, {groupShift}");
            w.Op($"mul.wide.u32 {address}, {tmp}, 4");
            w.Op($"add.s64 {address}, {address}, {scaleRow}");
            w.Op($"@{loading} cp.async.ca.shared.global [{Address(copyScales, at)}], [{address}], {4 * segments}");
            w.Op($"mul.wide.u32 {address}, {loadBlock}, 512");
            w.Op($"add.s64 {address}, {address}, {xRow}");
            w.Op($"@{loading} cp.async.cg.shared.global [{Address(copyX, at)}], [{address}], 16");
            w.Op("cp.async.commit_group");
        }

        string[] xv = w.Regs(".f32", "xv", 4), hi = w.Regs(".b32", "hi", 2), lo = w.Regs(".b32", "lo", 2), bits = w.Regs(".f32", "bits", 4);
        string part = w.Reg(".f32", "part"), other = w.Reg(".f32", "other");
        string[] quarter = w.Regs(".f32", "quarter", 4), sum = w.Regs(".f32", "xsum", segments);
        string[] fragment = w.Regs(".b32", "fb", 16), pairs = w.Regs(".b32", "pair", 8), shifted = w.Regs(".b32", "shifted", 3);
        string[] words = w.Regs(".b32", "word", 2 * v), scales = w.Regs(".b32", "scale", 2 * segments);
        string sc = w.Reg(".f32", "sc"), ze = w.Reg(".f32", "ze"), zz = w.Reg(".f32", "zz"), bitsTmp = w.Reg(".b32", "bits_tmp");

        void Compute(int p)
        {
            int at = p * slot.Bytes;
            w.Comment($"block b from slot {p}: x's hi/lo fragments, then the mmas");
            w.Op($"ld.shared.v2.f32 {{{xv[0]}, {xv[1]}}}, [{Address(readX, at)}]");
            w.Op($"ld.shared.v2.f32 {{{xv[2]}, {xv[3]}}}, [{Address(readX, at + 16)}]");
            w.Op($"mov.f32 {part}, 0f00000000");
            for (int e = 0; e < 2; e++)
            {
                // cvt puts its first source in the upper half: element k + 4 (xv[2 + e]) goes first.
                w.Op($"cvt.rn.bf16x2.f32 {hi[e]}, {xv[2 + e]}, {xv[e]}");
                Unpack(hi[e], bits[0], bits[1]);
                w.Op($"sub.f32 {bits[2]}, {xv[e]}, {bits[0]}");
                w.Op($"sub.f32 {bits[3]}, {xv[2 + e]}, {bits[1]}");
                w.Op($"add.f32 {part}, {part}, {bits[0]}");
                w.Op($"add.f32 {part}, {part}, {bits[1]}");
                w.Op($"cvt.rn.bf16x2.f32 {lo[e]}, {bits[3]}, {bits[2]}");
                Unpack(lo[e], bits[0], bits[1]);
                w.Op($"add.f32 {part}, {part}, {bits[0]}");
                w.Op($"add.f32 {part}, {part}, {bits[1]}");
            }
            w.Op($"st.shared.v2.b32 [{Address(writeB, at)}], {{{hi[0]}, {hi[1]}}}");
            w.Op($"st.shared.v2.b32 [{Address(writeB, at + 256)}], {{{lo[0]}, {lo[1]}}}");
            // Σ(hi + lo) of each 32-k quarter (lanes 8i..8i + 7), then each group's share of this block.
            w.Butterfly("add", part, other, 1, 2, 4);
            for (int i = 0; i < 4; i++)
                w.Op($"shfl.sync.idx.b32 {quarter[i]}, {part}, {8 * i}, 31, -1");
            for (int s = 0; s < segments; s++)
            {
                w.Op($"mov.f32 {sum[s]}, {quarter[s * v]}");
                for (int i = 1; i < v; i++)
                    w.Op($"add.f32 {sum[s]}, {sum[s]}, {quarter[s * v + i]}");
            }
            w.Op("bar.warp.sync -1");
            for (int f = 0; f < 4; f++)
            {
                int s = f / v, j = f % v;
                w.Op($"ld.shared.v4.b32 {Braced(fragment.AsSpan(4 * f, 4).ToArray())}, [{Address(readB, at + 16 * (4 * v * s + j))}]");
            }
            for (int r = 0; r < 2; r++)
            {
                for (int h = 0; h < 2; h++)
                    w.Op($"ld.shared{Vector(segments)}.b32 {Braced(scales.AsSpan(h * segments, segments).ToArray())}, [{Address(readScales, at + (16 * r + 8 * h) * 4 * segments)}]");
                for (int s = 0; s < segments; s++)
                {
                    for (int h = 0; h < 2; h++)
                        w.Op($"ld.shared{Vector(v)}.b32 {Braced(words.AsSpan(h * v, v).ToArray())}, [{Address(readWeights, at + (16 * r + 8 * h) * Slot.RowStride + 16 * v * s)}]");
                    for (int j = 0; j < v; j++)
                    {
                        for (int h = 0; h < 2; h++)
                            Dequantize(words[h * v + j], pairs.AsSpan(4 * h, 4).ToArray());
                        string[] bf = fragment.AsSpan(4 * (s * v + j), 4).ToArray();
                        for (int half = 0; half < 2; half++)
                        {
                            string c = j == 0 && half == 0 ? Braced(zero) : Braced(d);
                            string a = Braced([pairs[2 * half], pairs[4 + 2 * half], pairs[2 * half + 1], pairs[4 + 2 * half + 1]]);
                            w.Op($"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {Braced(d)}, {a}, {{{bf[2 * half]}, {bf[2 * half + 1]}}}, {c}");
                        }
                    }
                    // The segment is one group's share: acc += s·(D − 136·Σx) + z·Σx, column 0 + column 1.
                    for (int h = 0; h < 2; h++)
                    {
                        string target = acc[2 * r + h];
                        Unpack(scales[h * segments + s], sc, ze);
                        w.Op($"fma.rn.f32 {zz}, {sc}, 0fC3080000, {ze}");
                        w.Op($"fma.rn.f32 {target}, {sc}, {d[2 * h]}, {target}");
                        w.Op($"fma.rn.f32 {target}, {sc}, {d[2 * h + 1]}, {target}");
                        w.Op($"fma.rn.f32 {target}, {zz}, {sum[s]}, {target}");
                    }
                }
            }
        }

        // A word's two bf16 halves as f32 (the low half: a bf16 pair's first element, or a scale/zero word's scale).
        void Unpack(string pair, string low, string high)
        {
            w.Op($"shl.b32 {bitsTmp}, {pair}, 16");
            w.Op($"mov.b32 {low}, {bitsTmp}");
            w.Op($"and.b32 {bitsTmp}, {pair}, -65536");
            w.Op($"mov.b32 {high}, {bitsTmp}");
        }

        // sum += its value in the lanes lane ^ mask, for each mask in turn: over 2^masks lanes (every lane gets the sum).
        // Pair i of a word: nibbles i and i + 4 as the bf16 pair (128 + q_i, 128 + q_{i+4}).
        void Dequantize(string word, string[] result)
        {
            for (int i = 1; i < 4; i++)
                w.Op($"shr.u32 {shifted[i - 1]}, {word}, {4 * i}");
            for (int i = 0; i < 4; i++)
            {
                w.Op($"and.b32 {result[i]}, {(i == 0 ? word : shifted[i - 1])}, 983055"); // 0x000F000F
                w.Op($"or.b32 {result[i]}, {result[i]}, 1124090624"); // 0x43004300
            }
        }

        w.Comment($"main loop: block b + {stages - 1} copied into the ring while block b is computed ({stages} slots)");
        w.Op($"mov.b32 {b}, {warp}");
        w.Op($"mul.lo.s32 {step}, {split}, {stages - 1}");
        for (int p = 0; p < stages - 1; p++)
        {
            w.Op($"mad.lo.s32 {loadBlock}, {split}, {p}, {warp}");
            w.Op($"setp.lt.u32 {loading}, {loadBlock}, {end}");
            Copy(p);
        }
        w.Label("BLOCK_LOOP");
        for (int p = 0; p < stages; p++)
        {
            // Block b's group has landed (for this lane; the warp barrier makes every lane's copies visible, and
            // orders the previous block's reads of the slot the next copy overwrites before that copy).
            w.Op($"cp.async.wait_group {stages - 2}");
            w.Op("bar.warp.sync -1");
            w.Op($"add.s32 {loadBlock}, {b}, {step}");
            w.Op($"setp.lt.u32 {loading}, {loadBlock}, {end}");
            Copy((p + stages - 1) % stages);
            Compute(p);
            w.Op($"add.s32 {b}, {b}, {split}");
            w.Op($"setp.lt.u32 {more}, {b}, {end}");
            w.Op($"@!{more} bra BLOCK_DONE");
        }
        w.Op("bra BLOCK_LOOP");
        w.Label("BLOCK_DONE");
        w.Op("cp.async.wait_all");

        w.Comment("the warps' sums meet: lane t = 0 holds columns 0 and 1 of rows g, g + 8 of each tile");
        string reduce = w.Reg(".b32", "reduce"), isWriter = w.Reg(".pred", "is_writer"), skip = w.Reg(".pred", "skip");
        w.Op($"mad.lo.s32 {reduce}, {split}, {stages * slot.Bytes}, {shared}");
        w.Op($"setp.eq.u32 {isWriter}, {q}, 0");
        w.Op($"shl.b32 {tmp}, {warp}, 7");
        w.Op($"add.s32 {tmp}, {tmp}, {reduce}");
        w.Op($"shl.b32 {row}, {g}, 2");
        w.Op($"add.s32 {tmp}, {tmp}, {row}");
        for (int i = 0; i < 4; i++)
            w.Op($"@{isWriter} st.shared.f32 [{Address(tmp, 32 * i)}], {acc[i]}");
        w.Op("bar.sync 0");
        // Warp 0 finishes: thread i sums row first + i over the warps (gated: gate row i and up row i, i < 16), scales
        // it by the input's 1/rms when x is a folded norm's output, and writes y, or adds it into the residual and
        // writes residual·g with the set's Σ residual² added into a slot (ResidualNorm's protocol).
        string outputs = w.Reg(".b32", "outputs"), total = w.Reg(".f32", "total"), up = w.Reg(".f32", "up"), value = w.Reg(".f32", "value");
        string other2 = w.Reg(".b32", "warp_i"), sums = w.Reg(".b32", "sums"), active = w.Reg(".pred", "active"), readUp = w.Reg(".pred", "read_up");
        w.Op($"setp.ge.u32 {skip}, {thread}, 32");
        w.Op($"@{skip} bra DONE");
        w.Op($"selp.b32 {outputs}, 16, 32, {isGated}");
        w.Op($"add.s32 {row}, {first}, {thread}");
        w.Op($"setp.lt.u32 {active}, {thread}, {outputs}");
        w.Op($"setp.lt.and.s32 {active}, {row}, {count}, {active}");
        w.Op($"setp.lt.and.u32 {readUp}, {thread}, 16, {isGated}");
        w.Op($"shl.b32 {sums}, {thread}, 2");
        w.Op($"add.s32 {sums}, {sums}, {reduce}");
        w.Op($"mov.f32 {total}, 0f00000000");
        w.Op($"mov.f32 {up}, 0f00000000");
        w.Op($"mov.b32 {other2}, 0");
        w.Label("SUM_LOOP");
        w.Op($"ld.shared.f32 {value}, [{sums}]");
        w.Op($"add.f32 {total}, {total}, {value}");
        w.Op($"@{readUp} ld.shared.f32 {value}, [{sums}+64]");
        w.Op($"@{readUp} add.f32 {up}, {up}, {value}");
        w.Op($"add.s32 {sums}, {sums}, 128");
        w.Op($"add.s32 {other2}, {other2}, 1");
        w.Op($"setp.lt.u32 {more}, {other2}, {split}");
        w.Op($"@{more} bra SUM_LOOP");

        w.Comment("input scale: 1/sqrt(Σ slots / N + eps), the slots loaded at the start");
        string low = w.Reg(".b32", "low"), high = w.Reg(".b32", "high"), otherSlot = w.Reg(".f64", "other_slot"), factor = w.Reg(".f32", "factor");
        foreach (int mask in new[] { 16, 8, 4, 2, 1 })
        {
            w.Op($"mov.b64 {{{low}, {high}}}, {inputSlot}");
            w.Op($"shfl.sync.bfly.b32 {low}, {low}, {mask}, 31, -1");
            w.Op($"shfl.sync.bfly.b32 {high}, {high}, {mask}, 31, -1");
            w.Op($"mov.b64 {otherSlot}, {{{low}, {high}}}");
            w.Op($"add.f64 {inputSlot}, {inputSlot}, {otherSlot}");
        }
        w.Op($"cvt.rn.f32.f64 {factor}, {inputSlot}");
        w.Op($"fma.rn.f32 {factor}, {factor}, {inWidth}, {inEps}");
        w.Op($"sqrt.rn.f32 {factor}, {factor}");
        w.Op($"rcp.rn.f32 {factor}, {factor}");
        w.Op($"@{inputOn} mul.f32 {total}, {total}, {factor}");
        w.Op($"@{inputOn} mul.f32 {up}, {up}, {factor}");

        // Gated: y = silu(gate)·up.
        w.SiluProduct(total, total, up, w.Reg(".f32", "e2"), $"@{isGated}");
        w.Op($"mul.wide.u32 {address}, {row}, 4");
        w.Op($"@{normOn} bra NORM");
        w.Op($"add.s64 {address}, {address}, {y}");
        w.Op($"@{active} st.global.f32 [{address}], {total}");
        w.Op("bra DONE");

        w.Label("NORM");
        w.Comment("residual[row] += y, normed[row] = residual[row]·g[row]; the set's Σ residual² into slot set % 32");
        string squares = w.Reg(".f32", "squares"), gain = w.Reg(".f32", "gain"), rowAddress = w.Reg(".b64", "row_address");
        string square64 = w.Reg(".f64", "square64"), isFirst = w.Reg(".pred", "is_first");
        w.Op($"mov.f32 {squares}, 0f00000000");
        w.Op($"add.s64 {rowAddress}, {address}, {residual}");
        w.Op($"@{active} ld.global.f32 {value}, [{rowAddress}]");
        w.Op($"@{active} add.f32 {total}, {total}, {value}");
        w.Op($"@{active} st.global.f32 [{rowAddress}], {total}");
        w.Op($"add.s64 {rowAddress}, {address}, {gainPointer}");
        w.Op($"@{active} ld.global.f32 {gain}, [{rowAddress}]");
        w.Op($"@{active} mul.f32 {gain}, {total}, {gain}");
        w.Op($"add.s64 {rowAddress}, {address}, {normed}");
        w.Op($"@{active} st.global.f32 [{rowAddress}], {gain}");
        w.Op($"@{active} mul.f32 {squares}, {total}, {total}");
        w.Butterfly("add", squares, value, 16, 8, 4, 2, 1);
        w.Op($"cvt.f64.f32 {square64}, {squares}");
        w.Op($"and.b32 {tmp}, {set}, {ResidualNormSlots - 1}");
        w.Op($"mul.wide.u32 {rowAddress}, {tmp}, 8");
        w.Op($"add.s64 {rowAddress}, {rowAddress}, {normSums}");
        w.Op($"setp.eq.u32 {isFirst}, {thread}, 0");
        w.Op($"@{isFirst} red.global.add.f64 [{rowAddress}], {square64}");
        // The first set zeroes the slots the next producer adds into.
        w.Op($"setp.eq.u32 {isFirst}, {set}, 0");
        w.Op($"mul.wide.u32 {rowAddress}, {thread}, 8");
        w.Op($"add.s64 {rowAddress}, {rowAddress}, {normNext}");
        w.Op($"@{isFirst} st.global.f64 [{rowAddress}], 0d0000000000000000");
        w.Label("DONE");
        w.Op("ret");

        return w.Entry(Entry(groupSize, stages), parameters, $".maxntid {32 * MaxSplit}, 1, 1");
    }

    /// <summary>Slots of a ResidualNorm set (Kernels.ResidualNorm.Slots).</summary>
    private const int ResidualNormSlots = Kernels.ResidualNorm.Slots;

    private static string Vector(int n) => n == 1 ? "" : $".v{n}";

    private static string Braced(string[] registers) => registers.Length == 1 ? registers[0] : "{" + string.Join(", ", registers) + "}";

    private static string Address(string register, int offset) => offset == 0 ? register : $"{register}+{offset}";
}

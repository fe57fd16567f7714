using System.Numerics;
using System.Text;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// Emits the PTX text of the prefill GEMM on tensor cores, Y[m, n] (f32) = X[m, k] · W[n, k]ᵀ, with X and W
/// bf16 row-major (W is the "col" operand of <c>mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32</c> as
/// stored), plus the kernel that rounds the f32 activations to bf16 first (<c>cvt.rn.bf16x2.f32</c>).
/// Needs k a multiple of 8 (rows in whole 16-byte chunks); m and n are masked at the edges (rows of X or W
/// past the end are copied as zeros, stores past the end are skipped) and k is masked chunk by chunk.
/// Block (bx, by) computes rows bx·BlockM.., columns by·BlockN..: blocks that share a W tile run together,
/// so W is read from HBM about once while X (m·k·2 bytes) stays in the 50 MB L2.
/// Per k-step of BlockK: cp.async (16 bytes, .cg) copies a later tile into a swizzled shared buffer
/// (<see cref="GemmTile.SharedOffset"/>), one bar.sync, then either (sm_80+) each warp loads its fragments with
/// ldmatrix.x4 and issues FragmentsM·FragmentsN mma.sync per 16 of k, or (<see cref="GemmTile.Wgmma"/>, sm_90a) each
/// warpgroup issues one asynchronous wgmma.mma_async.m64nNk16 per 16 of k reading both tiles from shared memory.
/// Work at m=2048, n=k=4096: 68.7 GFLOP, about 90 MB moved (compute-bound). mma.sync on an H100 ran 600 TFLOP/s
/// from registers (ILGPU-NOTES.md; cuBLAS 791 with wgmma). Measured: docs/gpu.md (lowbit selftest --device cuda
/// --gemm-only --bench): mma.sync tiles 330-400 TFLOP/s, wgmma tiles 470-590 at Llama-3-8B's shapes.
/// </summary>
public static class TensorCoreGemmPtx
{
    public const string ConvertEntry = "lowbit_f32_to_bf16";

    /// <summary>Threads a block of the conversion kernel; each thread converts 8 floats.</summary>
    public const int ConvertThreads = 256;

    public static string GemmEntry(GemmTile tile) => "lowbit_gemm_bf16_" + tile.Name;

    /// <summary>The gated product of a wgmma tile: y[m, n] = silu(x·gateᵀ) ⊙ (x·upᵀ), params (x, gate, up, y, m, n, k).</summary>
    public static string GatedEntry(GemmTile tile) => "lowbit_gemm_bf16_gated_" + tile.Name;

    /// <summary>
    /// The int8 product of int8dq's prefill: y[m, n] = f32(Σ_k c[m, k]·q[n, k]) · (s_x[m]·s_w[n]), c the tokens' int8
    /// codes (s8) and q the weight's, stored as q + 128 (u8: int8wo/int8dq's device layout). The mma sums c·(q + 128)
    /// in s32, exactly, and the epilogue takes 128·Σ_k c[m, k] off, so the dot is the CPU kernel's int32 dot to the
    /// bit and y its f32 result. The tiles and copies are the bf16 kernel's, counted in pairs of int8: a k step of
    /// 16 bf16 is one of 32 int8 (<c>mma.m16n8k32.s8.u8</c>, <c>wgmma m64nNk32.s8.u8</c>). Params (x, w, y, m, n, k,
    /// x_scales f32 [m], x_sums s32 [m], w_scales f32 [n]); k a multiple of 16. In <see cref="Int8Module"/>.
    /// </summary>
    public static string Int8Entry(GemmTile tile) => "lowbit_gemm_s8u8_" + tile.Name;

    /// <summary>The gated int8 product of a wgmma tile (<see cref="HasGated"/>): y = silu(g) ⊙ u with g and u the
    /// <see cref="Int8Entry"/> products of gate and up, params (x, gate, up, y, m, n, k, x_scales, x_sums, gate_scales,
    /// up_scales). In <see cref="Int8Module"/>.</summary>
    public static string GatedInt8Entry(GemmTile tile) => "lowbit_gemm_s8u8_gated_" + tile.Name;

    /// <summary>Tilings whose module also has <see cref="GatedEntry"/>: wgmma tiles, whose warps span the block's full
    /// width, so a thread holds gate column c (left half of the block's W rows) and up column c (right half) together.</summary>
    public static bool HasGated(GemmTile tile) => tile.Wgmma && tile.BlockN / 2 % (tile.Threads / tile.ChunksPerRow) == 0;

    /// <summary>One module: the conversion kernel, the bf16 GEMM for <paramref name="tile"/>, the gated product where the
    /// tiling has it and, for mma.sync tilings, the int8 GEMM.</summary>
    public static string Module(GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(tile);
        return new StringBuilder()
            .Append("// Lowbit tensor-core GEMM ").Append(tile.Name).Append(", emitted by Lowbit.Cuda.Ptx.TensorCoreGemmPtx\n")
            .Append(tile.Wgmma ? ".version 8.0\n.target sm_90a\n" : ".version 7.8\n.target sm_80\n").Append(".address_size 64\n\n")
            .Append(".extern .shared .align 128 .b8 lowbit_smem[];\n\n")
            .Append(Convert()).Append('\n')
            .Append(Gemm(tile, Product.Bf16))
            .Append(tile.Wgmma ? "" : "\n" + Gemm(tile, Product.Int8))
            .Append(HasGated(tile) ? "\n" + Gemm(tile, Product.GatedBf16) : "")
            .ToString();
    }

    /// <summary>The module holding <see cref="Int8Entry"/>: <see cref="Module"/> for an mma.sync tiling; a module of its
    /// own for a wgmma tiling, because wgmma with s8 and u8 operands needs PTX ISA 8.4 (a driver of CUDA 12.4 or later),
    /// which the bf16 kernels do not.</summary>
    public static string Int8Module(GemmTile tile)
    {
        ArgumentNullException.ThrowIfNull(tile);
        if (!tile.Wgmma)
            return Module(tile);
        return new StringBuilder()
            .Append("// Lowbit int8 tensor-core GEMM ").Append(tile.Name).Append(", emitted by Lowbit.Cuda.Ptx.TensorCoreGemmPtx\n")
            .Append(".version 8.4\n.target sm_90a\n.address_size 64\n\n")
            .Append(".extern .shared .align 128 .b8 lowbit_smem[];\n\n")
            .Append(Gemm(tile, Product.Int8))
            .Append(HasGated(tile) ? "\n" + Gemm(tile, Product.GatedInt8) : "")
            .ToString();
    }

    /// <summary>dst[i] = bf16(src[i]) rounded to nearest even, 8 elements a thread (two 16-byte loads, one
    /// 16-byte store): params (src f32*, dst bf16*, count8 = elements / 8).</summary>
    private static string Convert()
    {
        var w = new PtxWriter();
        string src = w.Reg(".b64", "src"), dst = w.Reg(".b64", "dst"), count = w.Reg(".b32", "count8");
        string t = w.Reg(".b32", "t"), block = w.Reg(".b32", "block"), i = w.Reg(".b32", "i"), done = w.Reg(".pred", "done");
        string offset = w.Reg(".b64", "offset");
        string[] v = w.Regs(".f32", "v", 8), h = w.Regs(".b32", "h", 4);
        w.Op($"ld.param.u64 {src}, [p_src]");
        w.Op($"ld.param.u64 {dst}, [p_dst]");
        w.Op($"ld.param.u32 {count}, [p_count8]");
        w.Op($"mov.u32 {t}, %tid.x");
        w.Op($"mov.u32 {block}, %ctaid.x");
        w.Op($"mad.lo.s32 {i}, {block}, {ConvertThreads}, {t}");
        w.Op($"setp.ge.u32 {done}, {i}, {count}");
        w.Op($"@{done} exit");
        w.Op($"cvta.to.global.u64 {src}, {src}");
        w.Op($"cvta.to.global.u64 {dst}, {dst}");
        w.Op($"mul.wide.u32 {offset}, {i}, 32");
        w.Op($"add.s64 {src}, {src}, {offset}");
        w.Op($"ld.global.v4.f32 {{{v[0]}, {v[1]}, {v[2]}, {v[3]}}}, [{src}]");
        w.Op($"ld.global.v4.f32 {{{v[4]}, {v[5]}, {v[6]}, {v[7]}}}, [{src}+16]");
        w.Comment("cvt puts its first source in the upper half: element 2j (the lower address) goes second");
        for (int j = 0; j < 4; j++)
            w.Op($"cvt.rn.bf16x2.f32 {h[j]}, {v[2 * j + 1]}, {v[2 * j]}");
        w.Op($"mul.wide.u32 {offset}, {i}, 16");
        w.Op($"add.s64 {dst}, {dst}, {offset}");
        w.Op($"st.global.v4.b32 [{dst}], {{{h[0]}, {h[1]}, {h[2]}, {h[3]}}}");
        w.Op("ret");
        return w.Entry(ConvertEntry, [".param .u64 p_src", ".param .u64 p_dst", ".param .u32 p_count8"], $".maxntid {ConvertThreads}, 1, 1");
    }

    /// <summary>What a GEMM kernel of the module computes.</summary>
    private enum Product
    {
        Bf16,
        /// <summary>The block's W rows are BlockN/2 gate rows then the same BlockN/2 up rows, and it stores
        /// silu(gate)·up for those BlockN/2 columns.</summary>
        GatedBf16,
        /// <summary><see cref="Int8Entry"/>.</summary>
        Int8,
        /// <summary><see cref="GatedInt8Entry"/>.</summary>
        GatedInt8,
    }

    private static string Gemm(GemmTile g, Product product)
    {
        var w = new PtxWriter();
        bool gated = product is Product.GatedBf16 or Product.GatedInt8, int8 = product is Product.Int8 or Product.GatedInt8;
        int columns = gated ? g.BlockN / 2 : g.BlockN; // output columns a block
        int chunks = g.ChunksPerRow, rowBytes = g.RowBytes;
        int fm = g.FragmentsM, fn = g.FragmentsN;
        int swizzleShift = BitOperations.Log2((uint)(8 / chunks));
        string x = w.Reg(".b64", "x"), wt = w.Reg(".b64", "w"), y = w.Reg(".b64", "y");
        string m = w.Reg(".b32", "m"), n = w.Reg(".b32", "n"), k = w.Reg(".b32", "k");
        string t = w.Reg(".b32", "t"), lane = w.Reg(".b32", "lane"), warp = w.Reg(".b32", "warp");
        string wm = w.Reg(".b32", "warp_m"), wn = w.Reg(".b32", "warp_n"), m0 = w.Reg(".b32", "m0"), n0 = w.Reg(".b32", "n0");
        string smem = w.Reg(".b32", "smem"), tmp = w.Reg(".b32", "tmp"), tmp2 = w.Reg(".b32", "tmp2");

        w.Op($"ld.param.u64 {x}, [p_x]");
        w.Op($"ld.param.u64 {wt}, [p_w]");
        string up = gated ? w.Reg(".b64", "up") : wt;
        if (gated)
        {
            w.Op($"ld.param.u64 {up}, [p_up]");
            w.Op($"cvta.to.global.u64 {up}, {up}");
        }
        w.Op($"ld.param.u64 {y}, [p_y]");
        w.Op($"ld.param.u32 {m}, [p_m]");
        w.Op($"ld.param.u32 {n}, [p_n]");
        w.Op($"ld.param.u32 {k}, [p_k]");
        if (int8)
        {
            w.Comment("int8: k counted in pairs of int8 from here on, so the copies, swizzle and fragments are the bf16 kernel's");
            w.Op($"shr.u32 {k}, {k}, 1");
        }
        w.Op($"cvta.to.global.u64 {x}, {x}");
        w.Op($"cvta.to.global.u64 {wt}, {wt}");
        w.Op($"cvta.to.global.u64 {y}, {y}");
        w.Op($"mov.u32 {t}, %tid.x");
        w.Op($"mov.u32 {tmp}, %ctaid.x");
        w.Op($"mul.lo.s32 {m0}, {tmp}, {g.BlockM}");
        w.Op($"mov.u32 {tmp}, %ctaid.y");
        w.Op($"mul.lo.s32 {n0}, {tmp}, {columns}");
        w.Op($"and.b32 {lane}, {t}, 31");
        w.Op($"shr.u32 {warp}, {t}, 5");
        w.Op($"rem.u32 {wm}, {warp}, {g.WarpsM}");
        w.Op($"div.u32 {wn}, {warp}, {g.WarpsM}");
        w.Op($"mov.u32 {smem}, lowbit_smem");
        if (g.Wgmma)
        {
            w.Comment("the ring starts on a 1024-byte boundary, where the 128-byte swizzle pattern is anchored");
            w.Op($"add.s32 {smem}, {smem}, 1023");
            w.Op($"and.b32 {smem}, {smem}, -1024");
        }

        // Copies: thread t moves chunk column t % chunks of rows t / chunks + i·threads/chunks, for X and W alike.
        w.Comment("cp.async sources and destinations");
        string column = w.Reg(".b32", "copy_col"), firstRow = w.Reg(".b32", "copy_row"), kChunk = w.Reg(".b32", "copy_k");
        string slot = w.Reg(".b32", "copy_slot"), rowStride = w.Reg(".b32", "k_bytes"), chunkBytes = w.Reg(".b64", "copy_col_bytes");
        w.Op($"and.b32 {column}, {t}, {chunks - 1}");
        w.Op($"shr.u32 {firstRow}, {t}, {BitOperations.Log2((uint)chunks)}");
        w.Op($"shl.b32 {kChunk}, {column}, 3");
        EmitSwizzledOffset(w, slot, firstRow, column, tmp, swizzleShift, chunks, rowBytes);
        w.Op($"add.s32 {slot}, {slot}, {smem}");
        w.Op($"shl.b32 {rowStride}, {k}, 1");
        w.Op($"shl.b32 {tmp}, {column}, 4");
        w.Op($"cvt.u64.u32 {chunkBytes}, {tmp}");
        var copies = new List<(string Source, string Valid, string Base, int Offset)>();
        int step = g.Threads / chunks; // rows between a thread's copies
        foreach (var (name, origin, limit, count, region) in new[]
                 {
                     ("x", m0, m, g.CopiesM, 0),
                     ("w", n0, n, g.CopiesN, g.BlockM * rowBytes),
                 })
        {
            string[] source = w.Regs(".b64", $"src_{name}", count), valid = w.Regs(".pred", $"in_{name}", count);
            w.Op($"add.s32 {tmp2}, {origin}, {firstRow}");
            for (int i = 0; i < count; i++)
            {
                // Gated: W rows from BlockN/2 on are the up matrix's rows from n0 (GemmTile: step divides BlockN/2).
                bool upRow = gated && name == "w" && i * step >= columns;
                string basePointer = name == "x" ? x : upRow ? up : wt;
                w.Op($"add.s32 {tmp}, {tmp2}, {i * step - (upRow ? columns : 0)}");
                w.Op($"setp.lt.s32 {valid[i]}, {tmp}, {limit}");
                w.Op($"mul.wide.s32 {source[i]}, {tmp}, {rowStride}");
                w.Op($"add.s64 {source[i]}, {source[i]}, {chunkBytes}");
                w.Op($"add.s64 {source[i]}, {source[i]}, {basePointer}");
                copies.Add((source[i], valid[i], basePointer, region + i * g.Threads * 16));
            }
        }

        string kLeft = w.Reg(".b32", "k_left"), writeStage = w.Reg(".b32", "write_stage"), readStage = w.Reg(".b32", "read_stage");
        string inK = w.Reg(".pred", "in_k"), copyValid = w.Reg(".pred", "copy_valid"), copySize = w.Reg(".b32", "copy_size");
        string copyFrom = w.Reg(".b64", "copy_from"), copyTo = w.Reg(".b32", "copy_to"), wrap = w.Reg(".pred", "wrap");
        void CopyTile()
        {
            w.Op($"setp.lt.s32 {inK}, {kChunk}, {kLeft}");
            w.Op($"add.s32 {copyTo}, {slot}, {writeStage}");
            foreach (var (source, valid, basePointer, offset) in copies)
            {
                w.Op($"and.pred {copyValid}, {inK}, {valid}");
                w.Op($"selp.b32 {copySize}, 16, 0, {copyValid}");
                // A masked chunk reads nothing (size 0, zero fill) from an address that is still valid.
                w.Op($"selp.b64 {copyFrom}, {source}, {basePointer}, {copyValid}");
                w.Op($"cp.async.cg.shared.global [{Address(copyTo, offset)}], [{copyFrom}], 16, {copySize}");
                w.Op($"add.s64 {source}, {source}, {rowBytes}");
            }
            w.Op($"sub.s32 {kLeft}, {kLeft}, {g.BlockK}");
            w.Op("cp.async.commit_group");
            AdvanceStage(writeStage);
        }
        void AdvanceStage(string stage)
        {
            w.Op($"add.s32 {stage}, {stage}, {g.StageBytes}");
            w.Op($"setp.eq.s32 {wrap}, {stage}, {g.RingBytes}");
            w.Op($"selp.b32 {stage}, 0, {stage}, {wrap}");
        }

        string[] acc = w.Regs(int8 ? ".s32" : ".f32", "acc", fm * fn * 4);
        foreach (string r in acc)
            w.Op(int8 ? $"mov.s32 {r}, 0" : $"mov.f32 {r}, 0f00000000");
        string kTiles = w.Reg(".b32", "k_tiles"), kTile = w.Reg(".b32", "k_tile"), more = w.Reg(".pred", "more");
        w.Op($"mov.b32 {kLeft}, {k}");
        w.Op($"mov.b32 {writeStage}, 0");
        w.Op($"mov.b32 {readStage}, 0");
        w.Op($"add.s32 {kTiles}, {k}, {g.BlockK - 1}");
        w.Op($"shr.u32 {kTiles}, {kTiles}, {BitOperations.Log2((uint)g.BlockK)}");
        w.Op($"mov.b32 {kTile}, 0");
        var loop = new KLoop(w, g, int8, smem, lane, warp, wm, wn, readStage, tmp, tmp2, acc, CopyTile, () =>
        {
            AdvanceStage(readStage);
            w.Op($"add.s32 {kTile}, {kTile}, 1");
            w.Op($"setp.lt.s32 {more}, {kTile}, {kTiles}");
            w.Op($"@{more} bra K_LOOP");
        });
        if (g.Wgmma)
            loop.Wgmma();
        else
            loop.MmaSync();

        // Accumulator j of fragment (i, jn) holds row g + 8·(j >> 1), column 2q + (j & 1), g = lane >> 2, q = lane & 3.
        w.Comment(gated ? "epilogue: silu(gate) * up, fragment j (gate) with fragment j + FragmentsN/2 (up), masked f32 stores"
            : int8 ? "epilogue: f32(acc - 128 sum_x[row]) * (scale_x[row] * scale_w[col]), masked f32 stores" : "epilogue: masked f32 stores");
        int stored = gated ? fn / 2 : fn;
        string[] silu = gated ? w.Regs(".f32", "silu", 2) : [];
        string row0 = w.Reg(".b32", "row0"), col0 = w.Reg(".b32", "col0"), inRow = w.Reg(".pred", "in_row"), store = w.Reg(".pred", "store");
        string[] inColumn = w.Regs(".pred", "in_col", 2 * fn);
        string yRow = w.Reg(".b64", "y_row"), yHalf = w.Reg(".b64", "y_half"), yEight = w.Reg(".b64", "y_8rows"), wide = w.Reg(".b64", "wide");
        w.Op($"shr.u32 {tmp}, {lane}, 2");
        w.Op($"mad.lo.s32 {row0}, {wm}, {g.WarpTileM}, {m0}");
        w.Op($"add.s32 {row0}, {row0}, {tmp}");
        w.Op($"and.b32 {tmp}, {lane}, 3");
        w.Op($"shl.b32 {tmp}, {tmp}, 1");
        w.Op($"mad.lo.s32 {col0}, {wn}, {g.WarpTileN}, {n0}");
        w.Op($"add.s32 {col0}, {col0}, {tmp}");
        for (int j = 0; j < stored; j++)
        {
            w.Op($"add.s32 {tmp}, {col0}, {8 * j}");
            w.Op($"setp.lt.s32 {inColumn[2 * j]}, {tmp}, {n}");
            w.Op($"add.s32 {tmp}, {tmp}, 1");
            w.Op($"setp.lt.s32 {inColumn[2 * j + 1]}, {tmp}, {n}");
        }
        w.Op($"mul.wide.s32 {yRow}, {row0}, {n}");
        w.Op($"cvt.s64.s32 {wide}, {col0}");
        w.Op($"add.s64 {yRow}, {yRow}, {wide}");
        w.Op($"shl.b64 {yRow}, {yRow}, 2");
        w.Op($"add.s64 {yRow}, {yRow}, {y}");
        w.Op($"mul.wide.s32 {yEight}, {n}, 32");
        // int8: the scales and code sums of the thread's rows, the weight scales of its columns (from scaleColumns).
        string xScales = "", xSums = "", scaleColumns = "", upScaleColumns = "", rowScale = "", rowOffset = "", columnScale = "", dot = "", scales = "", rowAddress = "";
        string[] scaled = [];
        if (int8)
        {
            scaled = w.Regs(".f32", "scaled", gated ? 2 : 1);
            (xScales, xSums, scaleColumns) = (w.Reg(".b64", "x_scales"), w.Reg(".b64", "x_sums"), w.Reg(".b64", "w_scale_col"));
            (rowScale, rowOffset, columnScale) = (w.Reg(".f32", "row_scale"), w.Reg(".s32", "row_offset"), w.Reg(".f32", "col_scale"));
            (dot, scales, rowAddress) = (w.Reg(".s32", "dot"), w.Reg(".f32", "scale_product"), w.Reg(".b64", "row_address"));
            w.Op($"ld.param.u64 {xScales}, [p_x_scales]");
            w.Op($"ld.param.u64 {xSums}, [p_x_sums]");
            w.Op($"ld.param.u64 {scaleColumns}, [p_w_scales]");
            w.Op($"cvta.to.global.u64 {xScales}, {xScales}");
            w.Op($"cvta.to.global.u64 {xSums}, {xSums}");
            w.Op($"cvta.to.global.u64 {scaleColumns}, {scaleColumns}");
            w.Op($"mul.wide.s32 {wide}, {col0}, 4");
            w.Op($"add.s64 {scaleColumns}, {scaleColumns}, {wide}");
            if (gated)
            {
                upScaleColumns = w.Reg(".b64", "up_scale_col");
                w.Op($"ld.param.u64 {upScaleColumns}, [p_up_scales]");
                w.Op($"cvta.to.global.u64 {upScaleColumns}, {upScaleColumns}");
                w.Op($"add.s64 {upScaleColumns}, {upScaleColumns}, {wide}");
            }
        }
        // int8: f32(acc − 128 Σc) · f32(s_x · s_w) into target, the CPU kernel's order of roundings.
        string Int8Value(string accumulator, string columns, int j, int e, string target)
        {
            w.Op($"mov.f32 {columnScale}, 0f00000000");
            w.Op($"@{inColumn[2 * j + e]} ld.global.nc.f32 {columnScale}, [{Address(columns, 32 * j + 4 * e)}]");
            w.Op($"sub.s32 {dot}, {accumulator}, {rowOffset}");
            w.Op($"cvt.rn.f32.s32 {target}, {dot}");
            w.Op($"mul.rn.f32 {scales}, {rowScale}, {columnScale}");
            w.Op($"mul.rn.f32 {target}, {target}, {scales}");
            return target;
        }
        for (int i = 0; i < fm; i++)
        {
            for (int h = 0; h < 2; h++)
            {
                w.Op($"add.s32 {tmp}, {row0}, {16 * i + 8 * h}");
                w.Op($"setp.lt.s32 {inRow}, {tmp}, {m}");
                if (int8)
                {
                    w.Op($"mov.f32 {rowScale}, 0f00000000");
                    w.Op($"mov.s32 {rowOffset}, 0");
                    w.Op($"mul.wide.s32 {rowAddress}, {tmp}, 4");
                    w.Op($"add.s64 {wide}, {rowAddress}, {xScales}");
                    w.Op($"@{inRow} ld.global.nc.f32 {rowScale}, [{wide}]");
                    w.Op($"add.s64 {wide}, {rowAddress}, {xSums}");
                    w.Op($"@{inRow} ld.global.nc.s32 {rowOffset}, [{wide}]");
                    w.Op($"shl.b32 {rowOffset}, {rowOffset}, 7");
                }
                string pointer = yRow;
                if (h == 1)
                {
                    w.Op($"add.s64 {yHalf}, {yRow}, {yEight}");
                    pointer = yHalf;
                }
                for (int j = 0; j < stored; j++)
                {
                    for (int e = 0; e < 2; e++)
                    {
                        string value = acc[(i * fn + j) * 4 + 2 * h + e];
                        if (int8)
                            value = Int8Value(value, scaleColumns, j, e, scaled[0]);
                        if (gated)
                        {
                            string upValue = acc[(i * fn + j + fn / 2) * 4 + 2 * h + e];
                            if (int8)
                                upValue = Int8Value(upValue, upScaleColumns, j, e, scaled[1]);
                            w.SiluProduct(silu[1], value, upValue, silu[0]);
                            value = silu[1];
                        }
                        w.Op($"and.pred {store}, {inRow}, {inColumn[2 * j + e]}");
                        w.Op($"@{store} st.global.f32 [{Address(pointer, 32 * j + 4 * e)}], {value}");
                    }
                }
            }
            if (i + 1 < fm)
            {
                w.Op($"add.s64 {yRow}, {yRow}, {yEight}");
                w.Op($"add.s64 {yRow}, {yRow}, {yEight}");
            }
        }
        w.Op("ret");
        string[] sizes = [".param .u32 p_m", ".param .u32 p_n", ".param .u32 p_k"];
        return product switch
        {
            Product.GatedBf16 => w.Entry(GatedEntry(g), [".param .u64 p_x", ".param .u64 p_w", ".param .u64 p_up", ".param .u64 p_y", .. sizes], $".maxntid {g.Threads}, 1, 1"),
            Product.Int8 => w.Entry(Int8Entry(g), [".param .u64 p_x", ".param .u64 p_w", ".param .u64 p_y", .. sizes, ".param .u64 p_x_scales", ".param .u64 p_x_sums", ".param .u64 p_w_scales"],
                $".maxntid {g.Threads}, 1, 1"),
            Product.GatedInt8 => w.Entry(GatedInt8Entry(g), [".param .u64 p_x", ".param .u64 p_w", ".param .u64 p_up", ".param .u64 p_y", .. sizes,
                ".param .u64 p_x_scales", ".param .u64 p_x_sums", ".param .u64 p_w_scales", ".param .u64 p_up_scales"], $".maxntid {g.Threads}, 1, 1"),
            _ => w.Entry(GemmEntry(g), [".param .u64 p_x", ".param .u64 p_w", ".param .u64 p_y", .. sizes], $".maxntid {g.Threads}, 1, 1"),
        };
    }

    /// <summary>The k loop of <see cref="Gemm"/>: prologue copies, then per k-tile one barrier, the copy of a later
    /// tile and the tensor-core work on this one (<paramref name="copyTile"/> issues the next tile's copies and commits
    /// them, <paramref name="nextTile"/> advances the read stage and branches back to K_LOOP).</summary>
    private sealed class KLoop(PtxWriter w, GemmTile g, bool int8, string smem, string lane, string warp, string wm, string wn, string readStage,
        string tmp, string tmp2, string[] acc, Action copyTile, Action nextTile)
    {
        private readonly int _steps = g.BlockK / 16;

        /// <summary>ldmatrix.x4 fragments, mma.sync.m16n8k16: copies run Stages − 1 tiles ahead; after the barrier of
        /// tile kt every warp is done reading tile kt − 1, whose stage the copy of tile kt + Stages − 1 overwrites.</summary>
        public void MmaSync()
        {
            int rowBytes = g.RowBytes, chunks = g.ChunksPerRow, fm = g.FragmentsM, fn = g.FragmentsN;
            int swizzleShift = BitOperations.Log2((uint)(8 / chunks));
            // ldmatrix.x4 row addresses. X fragment (16×16): lane l gives row l & 15, chunk 2s + (l >> 4), so its
            // four 8×8 matrices are a0..a3 of mma's A. W (two 8-column fragments): lane l gives row
            // (l & 7) + 8·((l >> 4) & 1), chunk 2s + ((l >> 3) & 1): matrices b0, b1 of fragment 2j, then of 2j+1.
            w.Comment("ldmatrix addresses");
            string[] fragmentX = w.Regs(".b32", "ldm_x", _steps), fragmentW = w.Regs(".b32", "ldm_w", _steps);
            string row = w.Reg(".b32", "ldm_row"), half = w.Reg(".b32", "ldm_half"), rowBase = w.Reg(".b32", "ldm_base");
            foreach (var (addresses, isX) in new[] { (fragmentX, true), (fragmentW, false) })
            {
                if (isX)
                {
                    w.Op($"and.b32 {row}, {lane}, 15");
                    w.Op($"shr.u32 {half}, {lane}, 4");
                    w.Op($"mul.lo.s32 {rowBase}, {wm}, {g.WarpTileM * rowBytes}");
                }
                else
                {
                    w.Op($"and.b32 {row}, {lane}, 7");
                    w.Op($"and.b32 {tmp}, {lane}, 16");
                    w.Op($"shr.u32 {tmp}, {tmp}, 1");
                    w.Op($"add.s32 {row}, {row}, {tmp}");
                    w.Op($"shr.u32 {half}, {lane}, 3");
                    w.Op($"and.b32 {half}, {half}, 1");
                    w.Op($"mul.lo.s32 {rowBase}, {wn}, {g.WarpTileN * rowBytes}");
                    w.Op($"add.s32 {rowBase}, {rowBase}, {g.BlockM * rowBytes}");
                }
                w.Op($"mad.lo.s32 {rowBase}, {row}, {rowBytes}, {rowBase}");
                w.Op($"add.s32 {rowBase}, {rowBase}, {smem}");
                w.Op($"shr.u32 {tmp2}, {row}, {swizzleShift}");
                w.Op($"and.b32 {tmp2}, {tmp2}, {chunks - 1}");
                for (int s = 0; s < _steps; s++)
                {
                    w.Op($"add.s32 {tmp}, {half}, {2 * s}");
                    w.Op($"xor.b32 {tmp}, {tmp}, {tmp2}");
                    w.Op($"shl.b32 {tmp}, {tmp}, 4");
                    w.Op($"add.s32 {addresses[s]}, {rowBase}, {tmp}");
                }
            }

            string[] a = w.Regs(".b32", "fa", fm * 4), b = w.Regs(".b32", "fb", fn * 2);
            w.Comment($"prologue: tiles 0..{g.Stages - 2} in flight");
            for (int s = 0; s < g.Stages - 1; s++)
                copyTile();
            w.Label("K_LOOP");
            w.Op($"cp.async.wait_group {g.Stages - 2}");
            w.Op("bar.sync 0");
            copyTile();
            string addrX = w.Reg(".b32", "addr_x"), addrW = w.Reg(".b32", "addr_w");
            for (int s = 0; s < _steps; s++)
            {
                w.Op($"add.s32 {addrX}, {fragmentX[s]}, {readStage}");
                for (int i = 0; i < fm; i++)
                    w.Op($"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{a[4 * i]}, {a[4 * i + 1]}, {a[4 * i + 2]}, {a[4 * i + 3]}}}, [{Address(addrX, i * 16 * rowBytes)}]");
                w.Op($"add.s32 {addrW}, {fragmentW[s]}, {readStage}");
                for (int j = 0; j < fn / 2; j++)
                    w.Op($"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{b[4 * j]}, {b[4 * j + 1]}, {b[4 * j + 2]}, {b[4 * j + 3]}}}, [{Address(addrW, j * 16 * rowBytes)}]");
                for (int i = 0; i < fm; i++)
                {
                    for (int j = 0; j < fn; j++)
                    {
                        string d = string.Join(", ", acc.AsSpan((i * fn + j) * 4, 4).ToArray());
                        w.Op($"{(int8 ? "mma.sync.aligned.m16n8k32.row.col.s32.s8.u8.s32" : "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")} {{{d}}}, {{{a[4 * i]}, {a[4 * i + 1]}, {a[4 * i + 2]}, {a[4 * i + 3]}}}, {{{b[2 * j]}, {b[2 * j + 1]}}}, {{{d}}}");
                    }
                }
            }
            nextTile();
            w.Op("cp.async.wait_all");
        }

        /// <summary>
        /// wgmma.mma_async.m64nNk16 with both operands read from shared memory through descriptors: start address,
        /// stride 1024 bytes between 8-row groups, 128-byte swizzle (the copies' layout); a k-step of 16 moves the
        /// start by 32 bytes inside the swizzled rows. The wgmma of a tile is still running while the next one is
        /// issued (wait_group 1), so copies run Stages − 2 tiles ahead: the stage the copy after the barrier of tile
        /// kt overwrites is tile kt − 2's, whose wgmma every warpgroup waited for before that barrier. cp.async writes
        /// through the generic proxy and wgmma reads through the async proxy: each thread fences its landed copies
        /// (fence.proxy.async) before the barrier.
        /// </summary>
        public void Wgmma()
        {
            string wide = w.Reg(".b64", "desc_wide"), scaleD = w.Reg(".pred", "scale_d");
            string baseX = w.Reg(".b64", "desc_x0"), baseW = w.Reg(".b64", "desc_w0");
            string descX = w.Reg(".b64", "desc_x"), descW = w.Reg(".b64", "desc_w");
            w.Comment("descriptors: start >> 4 (bits 0-13), leading offset 16 B (16-29, unused with this swizzle), stride 1024 B (32-45), 128-byte swizzle (62-63)");
            foreach (var (descriptor, isX) in new[] { (baseX, true), (baseW, false) })
            {
                if (isX)
                {
                    w.Op($"shr.u32 {tmp}, {warp}, 2");
                    w.Op($"mad.lo.s32 {tmp}, {tmp}, {64 * g.RowBytes}, {smem}");
                }
                else
                    w.Op($"add.s32 {tmp}, {smem}, {g.BlockM * g.RowBytes}");
                w.Op($"shr.u32 {tmp}, {tmp}, 4");
                w.Op($"cvt.u64.u32 {wide}, {tmp}");
                w.Op($"or.b64 {descriptor}, {wide}, {DescriptorBits}");
            }
            w.Op($"setp.eq.u32 {scaleD}, {lane}, {lane}");
            string d = string.Join(", ", acc);

            w.Comment($"prologue: tiles 0..{g.Stages - 3} in flight");
            for (int s = 0; s < g.Stages - 2; s++)
                copyTile();
            w.Label("K_LOOP");
            w.Op($"cp.async.wait_group {g.Stages - 3}");
            w.Op("fence.proxy.async.shared::cta");
            w.Op("bar.sync 0");
            copyTile();
            w.Op("wgmma.fence.sync.aligned");
            w.Op($"shr.u32 {tmp}, {readStage}, 4");
            w.Op($"cvt.u64.u32 {wide}, {tmp}");
            for (int s = 0; s < _steps; s++)
            {
                w.Op($"add.s64 {descX}, {baseX}, {wide}");
                w.Op($"add.s64 {descW}, {baseW}, {wide}");
                if (s > 0)
                {
                    w.Op($"add.s64 {descX}, {descX}, {2 * s}");
                    w.Op($"add.s64 {descW}, {descW}, {2 * s}");
                }
                // Integer wgmma has no operand scaling or transposition (K-major only, as these tiles are).
                w.Op(int8 ? $"wgmma.mma_async.sync.aligned.m64n{g.BlockN}k32.s32.s8.u8 {{{d}}}, {descX}, {descW}, {scaleD}"
                    : $"wgmma.mma_async.sync.aligned.m64n{g.BlockN}k16.f32.bf16.bf16 {{{d}}}, {descX}, {descW}, {scaleD}, 1, 1, 0, 0");
            }
            w.Op("wgmma.commit_group.sync.aligned");
            w.Op("wgmma.wait_group.sync.aligned 1");
            nextTile();
            w.Op("wgmma.wait_group.sync.aligned 0");
            w.Op("cp.async.wait_all");
        }
    }

    /// <summary>The constant fields of a wgmma shared-memory descriptor for 128-byte-swizzled K-major tiles: leading
    /// byte offset 16 (encoded 1), stride byte offset 1024 between 8-row groups (encoded 64), swizzle mode 1.</summary>
    public const ulong DescriptorBits = 1UL << 62 | 64UL << 32 | 1UL << 16;

    /// <summary>offset = row·RowBytes + ((column ^ Swizzle(row)) &lt;&lt; 4), as <see cref="GemmTile.SharedOffset"/>.</summary>
    private static void EmitSwizzledOffset(PtxWriter w, string offset, string row, string column, string tmp, int swizzleShift, int chunks, int rowBytes)
    {
        w.Op($"shr.u32 {tmp}, {row}, {swizzleShift}");
        w.Op($"and.b32 {tmp}, {tmp}, {chunks - 1}");
        w.Op($"xor.b32 {tmp}, {tmp}, {column}");
        w.Op($"shl.b32 {tmp}, {tmp}, 4");
        w.Op($"mad.lo.s32 {offset}, {row}, {rowBytes}, {tmp}");
    }

    private static string Address(string register, int offset) => offset == 0 ? register : $"{register}+{offset}";
}

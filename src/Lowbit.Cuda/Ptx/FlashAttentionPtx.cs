using System.Numerics;
using System.Text;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// Emits the PTX of causal prefill attention on tensor cores (flash attention with mma.sync.m16n8k16, bf16 operands,
/// f32 accumulators), for head dimension <c>D</c> = 64 or 128. Same contract as the ILGPU flash kernel
/// (Kernels/Attention.cs): q and out [rows, heads·D] f32, the K and V caches [maxSeq, kvHeads·D] f32 or bf16; query row r sits
/// at position p0 + r and sees keys 0..p0 + r of kv head h / (heads / kvHeads).
/// <para>A block of 4 or 8 warps takes 16 query rows of one head a warp and walks the keys in tiles of
/// <see cref="Keys"/>. Each warp keeps its queries as mma A fragments in registers (scaled by scale·log2 e and
/// rounded to bf16 once). Per tile the block converts the K and V rows to bf16 into shared memory (rows of D·2
/// bytes, 16-byte chunk c of row j at c ^ (j mod 8), so ldmatrix phases hit 8 different bank groups), then each warp
/// computes S = Q·Kᵀ (ldmatrix.x4 of K as the "col" operand), masks keys past each row's position, updates its
/// rows' running max and sum (online softmax in base 2: ex2), rescales its output accumulators, and adds P·V with
/// P taken straight from S's accumulators (an m16n8 C fragment pair is an m16n8k16 A fragment) and V through
/// ldmatrix.x4.trans. The sums meet across the 4 lanes of a row at the end. Blocks run longest (last) query tiles
/// first.</para>
/// </summary>
public static class FlashAttentionPtx
{
    /// <summary>Keys a tile.</summary>
    public const int Keys = 64;

    /// <summary>Warps a block (16 query rows each): 8 ran 11-15% faster than 4 on the H100 at 512-8192 rows (docs/gpu.md).</summary>
    public const int DefaultWarps = 8;

    public static bool Supports(int headDim) => headDim is 64 or 128;

    /// <summary>Query rows a block takes.</summary>
    public static int Rows(int warps) => 16 * warps;

    public static int Threads(int warps) => 32 * warps;

    public static string Entry(int headDim, int warps, bool bf16Cache = false) => $"lowbit_flash_attention_d{headDim}_w{warps}{(bf16Cache ? "_bf16kv" : "")}";

    /// <summary>The K and V tiles in bf16.</summary>
    public static int SharedBytes(int headDim) => 2 * Keys * headDim * 2;

    /// <summary>Blocks of a launch for <paramref name="rows"/> query rows: (query tiles) × heads.</summary>
    public static int Blocks(int rows, int heads, int warps) => (rows + Rows(warps) - 1) / Rows(warps) * heads;

    /// <param name="warps">4 or 8 (the copies need a multiple of 8 key rows a pass).</param>
    /// <param name="bf16Cache">The K and V caches hold bf16 (copied to shared memory as they are) instead of f32
    /// (rounded to bf16 on the way: the same operands when the bf16 cache was rounded the same way).</param>
    public static string Module(int headDim, int warps = DefaultWarps, bool bf16Cache = false)
    {
        if (!Supports(headDim))
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "64 or 128");
        if (warps is not (4 or 8))
            throw new ArgumentOutOfRangeException(nameof(warps), warps, "4 or 8");
        return new StringBuilder()
            .Append("// Lowbit flash attention on tensor cores, D = ").Append(headDim).Append(", ").Append(warps).Append(bf16Cache ? " warps, bf16 KV cache" : " warps").Append(", emitted by Lowbit.Cuda.Ptx.FlashAttentionPtx\n")
            .Append(".version 7.8\n.target sm_80\n.address_size 64\n\n")
            .Append(".extern .shared .align 128 .b8 lowbit_smem[];\n\n")
            .Append(Kernel(headDim, warps, bf16Cache))
            .ToString();
    }

    private static string Kernel(int d, int warps, bool bf16Cache)
    {
        int cacheElement = bf16Cache ? 2 : 4;
        var w = new PtxWriter();
        int blockRows = Rows(warps), threads = Threads(warps);
        int rowBytes = d * 2, chunks = d / 8, qSteps = d / 16, outFragments = d / 8;
        int copyRows = threads / chunks, copies = Keys / copyRows; // a thread converts `copies` chunks of K and of V a tile
        const int keyFragments = Keys / 8, keySteps = Keys / 16;
        const string NegativeInfinity = "0fFF800000";

        string q = w.Reg(".b64", "q"), k = w.Reg(".b64", "k"), v = w.Reg(".b64", "v"), output = w.Reg(".b64", "out");
        string rows = w.Reg(".b32", "rows"), position0 = w.Reg(".b32", "p0"), heads = w.Reg(".b32", "heads"), group = w.Reg(".b32", "group");
        string kvColumns = w.Reg(".b32", "kv_columns"), scale = w.Reg(".f32", "scale");
        string t = w.Reg(".b32", "t"), lane = w.Reg(".b32", "lane"), warp = w.Reg(".b32", "warp"), smem = w.Reg(".b32", "smem");
        string tmp = w.Reg(".b32", "tmp"), tmp2 = w.Reg(".b32", "tmp2"), wide = w.Reg(".b64", "wide");
        string h = w.Reg(".b32", "h"), kvHead = w.Reg(".b32", "kv_head"), r0 = w.Reg(".b32", "r0"), end = w.Reg(".b32", "end");
        string qColumns = w.Reg(".b32", "q_columns");
        w.Op($"ld.param.u64 {q}, [p_q]");
        w.Op($"ld.param.u64 {k}, [p_k]");
        w.Op($"ld.param.u64 {v}, [p_v]");
        w.Op($"ld.param.u64 {output}, [p_out]");
        w.Op($"ld.param.u32 {rows}, [p_rows]");
        w.Op($"ld.param.u32 {position0}, [p_p0]");
        w.Op($"ld.param.u32 {heads}, [p_heads]");
        w.Op($"ld.param.u32 {group}, [p_group]");
        w.Op($"ld.param.u32 {kvColumns}, [p_kv_columns]");
        w.Op($"ld.param.f32 {scale}, [p_scale]");
        w.Op($"cvta.to.global.u64 {q}, {q}");
        w.Op($"cvta.to.global.u64 {k}, {k}");
        w.Op($"cvta.to.global.u64 {v}, {v}");
        w.Op($"cvta.to.global.u64 {output}, {output}");
        w.Op($"mov.u32 {t}, %tid.x");
        w.Op($"and.b32 {lane}, {t}, 31");
        w.Op($"shr.u32 {warp}, {t}, 5");
        w.Op($"mov.u32 {smem}, lowbit_smem");
        w.Op($"mul.lo.s32 {qColumns}, {heads}, {d}");

        w.Comment("block b: head b mod heads, query tile (tiles - 1 - b / heads): the longest tiles first");
        string tiles = w.Reg(".b32", "tiles"), back = w.Reg(".b32", "back");
        w.Op($"mov.u32 {tmp}, %ctaid.x");
        w.Op($"div.u32 {back}, {tmp}, {heads}");
        w.Op($"rem.u32 {h}, {tmp}, {heads}");
        w.Op($"div.u32 {kvHead}, {h}, {group}");
        w.Op($"add.s32 {tiles}, {rows}, {blockRows - 1}");
        w.Op($"shr.u32 {tiles}, {tiles}, {BitOperations.Log2((uint)blockRows)}");
        w.Op($"sub.s32 {tmp}, {tiles}, 1");
        w.Op($"sub.s32 {tmp}, {tmp}, {back}");
        w.Op($"mul.lo.s32 {r0}, {tmp}, {blockRows}");
        w.Comment("keys below end = p0 + min(r0 + blockRows, rows)");
        w.Op($"add.s32 {tmp}, {r0}, {blockRows}");
        w.Op($"min.s32 {tmp}, {tmp}, {rows}");
        w.Op($"add.s32 {end}, {position0}, {tmp}");

        // This lane's two rows: g and g + 8 of the warp's 16 (rows past the prompt repeat its last row, unstored).
        string rowA = w.Reg(".b32", "row_a"), rowB = w.Reg(".b32", "row_b"), lastRow = w.Reg(".b32", "last_row");
        string loadA = w.Reg(".b32", "load_a"), loadB = w.Reg(".b32", "load_b"), positionA = w.Reg(".b32", "pos_a"), positionB = w.Reg(".b32", "pos_b");
        string quad = w.Reg(".b32", "quad");
        w.Op($"shr.u32 {tmp}, {lane}, 2");
        w.Op($"mad.lo.s32 {rowA}, {warp}, 16, {r0}");
        w.Op($"add.s32 {rowA}, {rowA}, {tmp}");
        w.Op($"add.s32 {rowB}, {rowA}, 8");
        w.Op($"sub.s32 {lastRow}, {rows}, 1");
        w.Op($"min.s32 {loadA}, {rowA}, {lastRow}");
        w.Op($"min.s32 {loadB}, {rowB}, {lastRow}");
        w.Op($"add.s32 {positionA}, {position0}, {loadA}");
        w.Op($"add.s32 {positionB}, {position0}, {loadB}");
        w.Op($"and.b32 {quad}, {lane}, 3");

        w.Comment("queries as A fragments: register r of k-step s holds row g + 8(r mod 2), columns 16s + 2*quad + 8(r / 2) + {0, 1}");
        string[] qa = w.Regs(".b32", "qa", 4 * qSteps);
        string[] pair = w.Regs(".f32", "pair", 2);
        string qRowA = w.Reg(".b64", "q_row_a"), qRowB = w.Reg(".b64", "q_row_b");
        // The address of this lane's first column (2·quad) of head h in row `row` of q or out ([rows, heads·D] f32).
        void LanePointer(string pointer, string row, string matrix)
        {
            w.Op($"mad.lo.s32 {tmp}, {row}, {qColumns}, {quad}");
            w.Op($"mad.lo.s32 {tmp2}, {h}, {d}, {quad}");
            w.Op($"add.s32 {tmp}, {tmp}, {tmp2}"); // row·qColumns + h·D + 2·quad
            w.Op($"mul.wide.s32 {pointer}, {tmp}, 4");
            w.Op($"add.s64 {pointer}, {pointer}, {matrix}");
        }
        LanePointer(qRowA, loadA, q);
        LanePointer(qRowB, loadB, q);
        for (int s = 0; s < qSteps; s++)
        {
            for (int r = 0; r < 4; r++)
            {
                w.Op($"ld.global.v2.f32 {{{pair[0]}, {pair[1]}}}, [{(r % 2 == 0 ? qRowA : qRowB)}+{4 * (16 * s + 8 * (r / 2))}]");
                w.Op($"mul.f32 {pair[0]}, {pair[0]}, {scale}");
                w.Op($"mul.f32 {pair[1]}, {pair[1]}, {scale}");
                w.Op($"cvt.rn.bf16x2.f32 {qa[4 * s + r]}, {pair[1]}, {pair[0]}");
            }
        }

        w.Comment("copies: thread t converts chunk column t mod chunks of key rows t / chunks + i*copyRows of K and V");
        string copyColumn = w.Reg(".b32", "copy_col"), copyRow = w.Reg(".b32", "copy_row"), copyTo = w.Reg(".b32", "copy_to");
        string kFrom = w.Reg(".b64", "k_from"), vFrom = w.Reg(".b64", "v_from"), rowStride = w.Reg(".b64", "row_stride");
        w.Op($"and.b32 {copyColumn}, {t}, {chunks - 1}");
        w.Op($"shr.u32 {copyRow}, {t}, {BitOperations.Log2((uint)chunks)}");
        w.Op($"and.b32 {tmp}, {copyRow}, 7");
        w.Op($"xor.b32 {tmp}, {tmp}, {copyColumn}");
        w.Op($"shl.b32 {tmp}, {tmp}, 4");
        w.Op($"mad.lo.s32 {copyTo}, {copyRow}, {rowBytes}, {tmp}");
        w.Op($"add.s32 {copyTo}, {copyTo}, {smem}");
        w.Op($"mad.lo.s32 {tmp}, {copyRow}, {kvColumns}, {copyColumn}"); // with the next line: row·kvColumns + kvHead·D + 8·column
        w.Op($"mad.lo.s32 {tmp2}, {copyColumn}, 7, {tmp}");
        w.Op($"mad.lo.s32 {tmp2}, {kvHead}, {d}, {tmp2}");
        w.Op($"mul.wide.s32 {wide}, {tmp2}, {cacheElement}");
        w.Op($"add.s64 {kFrom}, {k}, {wide}");
        w.Op($"add.s64 {vFrom}, {v}, {wide}");
        w.Op($"mul.wide.s32 {rowStride}, {kvColumns}, {cacheElement * copyRows}");

        w.Comment("ldmatrix addresses: K as mma's col operand (lane l: key (l mod 8) + 8*((l >> 4) & 1), chunk 2s + ((l >> 3) & 1));"
            + " V transposed (lane l: key (l mod 8) + 8*((l >> 3) & 1), chunk 2j + (l >> 4))");
        string[] kAddress = w.Regs(".b32", "k_ldm", qSteps), vAddress = w.Regs(".b32", "v_ldm", outFragments / 2);
        string swizzle = w.Reg(".b32", "ldm_swizzle"), ldmRow = w.Reg(".b32", "ldm_row"), half = w.Reg(".b32", "ldm_half");
        w.Op($"and.b32 {swizzle}, {lane}, 7");
        foreach (var (addresses, isKey) in new[] { (kAddress, true), (vAddress, false) })
        {
            w.Op($"shr.u32 {tmp}, {lane}, {(isKey ? 4 : 3)}");
            w.Op($"and.b32 {tmp}, {tmp}, 1");
            w.Op($"mad.lo.s32 {ldmRow}, {tmp}, 8, {swizzle}");
            w.Op($"mad.lo.s32 {ldmRow}, {ldmRow}, {rowBytes}, {smem}");
            if (isKey)
            {
                w.Op($"shr.u32 {half}, {lane}, 3");
                w.Op($"and.b32 {half}, {half}, 1");
            }
            else
            {
                w.Op($"shr.u32 {half}, {lane}, 4");
                w.Op($"add.s32 {ldmRow}, {ldmRow}, {Keys * rowBytes}");
            }
            for (int s = 0; s < addresses.Length; s++)
            {
                w.Op($"add.s32 {tmp}, {half}, {2 * s}");
                w.Op($"xor.b32 {tmp}, {tmp}, {swizzle}");
                w.Op($"shl.b32 {tmp}, {tmp}, 4");
                w.Op($"add.s32 {addresses[s]}, {ldmRow}, {tmp}");
            }
        }

        string[] o = w.Regs(".f32", "o", 4 * outFragments), score = w.Regs(".f32", "s", 4 * keyFragments);
        string[] pa = w.Regs(".b32", "pa", 4 * keySteps), b = w.Regs(".b32", "b", 4);
        string maxA = w.Reg(".f32", "max_a"), maxB = w.Reg(".f32", "max_b"), sumA = w.Reg(".f32", "sum_a"), sumB = w.Reg(".f32", "sum_b");
        string topA = w.Reg(".f32", "top_a"), topB = w.Reg(".f32", "top_b"), rescaleA = w.Reg(".f32", "rescale_a"), rescaleB = w.Reg(".f32", "rescale_b");
        string f = w.Reg(".f32", "f"), kt = w.Reg(".b32", "kt"), limitA = w.Reg(".b32", "limit_a"), limitB = w.Reg(".b32", "limit_b");
        string inside = w.Reg(".pred", "inside"), keep = w.Reg(".pred", "keep"), more = w.Reg(".pred", "more"), unmasked = w.Reg(".pred", "unmasked");
        string[] load = w.Regs(".f32", "ld", 8), packed = w.Regs(".b32", "pk", 4);
        foreach (string r in o)
            w.Op($"mov.f32 {r}, 0f00000000");
        w.Op($"mov.f32 {maxA}, {NegativeInfinity}");
        w.Op($"mov.f32 {maxB}, {NegativeInfinity}");
        w.Op($"mov.f32 {sumA}, 0f00000000");
        w.Op($"mov.f32 {sumB}, 0f00000000");
        w.Op($"mov.b32 {kt}, 0");

        w.Label("KEY_TILE");
        w.Op("bar.sync 0"); // every warp is done reading the last tile
        for (int i = 0; i < copies; i++)
        {
            w.Comment($"copy {i}: key kt + row, zeros past end");
            w.Op($"add.s32 {tmp}, {kt}, {copyRow}");
            w.Op($"add.s32 {tmp}, {tmp}, {i * copyRows}");
            w.Op($"setp.lt.s32 {inside}, {tmp}, {end}");
            foreach (var (from, region) in new[] { (kFrom, 0), (vFrom, Keys * rowBytes) })
            {
                if (bf16Cache)
                {
                    foreach (string r in packed)
                        w.Op($"mov.b32 {r}, 0");
                    w.Op($"@{inside} ld.global.v4.b32 {{{packed[0]}, {packed[1]}, {packed[2]}, {packed[3]}}}, [{from}]");
                }
                else
                {
                    foreach (string r in load)
                        w.Op($"mov.f32 {r}, 0f00000000");
                    w.Op($"@{inside} ld.global.v4.f32 {{{load[0]}, {load[1]}, {load[2]}, {load[3]}}}, [{from}]");
                    w.Op($"@{inside} ld.global.v4.f32 {{{load[4]}, {load[5]}, {load[6]}, {load[7]}}}, [{from}+16]");
                    for (int j = 0; j < 4; j++)
                        w.Op($"cvt.rn.bf16x2.f32 {packed[j]}, {load[2 * j + 1]}, {load[2 * j]}");
                }
                w.Op($"st.shared.v4.b32 [{copyTo}+{region + i * copyRows * rowBytes}], {{{packed[0]}, {packed[1]}, {packed[2]}, {packed[3]}}}");
                w.Op($"add.s64 {from}, {from}, {rowStride}"); // after the last copy: the next tile's first row
            }
        }
        w.Op("bar.sync 0");

        w.Comment("S = Q*K^T: accumulator j of key fragment n holds row g + 8(j / 2), key kt + 8n + 2*quad + j mod 2");
        foreach (string r in score)
            w.Op($"mov.f32 {r}, 0f00000000");
        for (int pairIndex = 0; pairIndex < keyFragments / 2; pairIndex++)
        {
            for (int s = 0; s < qSteps; s++)
            {
                w.Op($"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{b[0]}, {b[1]}, {b[2]}, {b[3]}}}, [{kAddress[s]}+{pairIndex * 16 * rowBytes}]");
                for (int half2 = 0; half2 < 2; half2++)
                {
                    int n = 2 * pairIndex + half2;
                    string acc = string.Join(", ", score.AsSpan(4 * n, 4).ToArray());
                    w.Op($"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {{{acc}}}, {{{qa[4 * s]}, {qa[4 * s + 1]}, {qa[4 * s + 2]}, {qa[4 * s + 3]}}}, {{{b[2 * half2]}, {b[2 * half2 + 1]}}}, {{{acc}}}");
                }
            }
        }

        w.Comment("causal mask, only on tiles that reach past the block's first position: key kt + 8n + 2*quad + e must be <= the row's position");
        w.Op($"add.s32 {tmp}, {kt}, {Keys - 1}");
        w.Op($"add.s32 {tmp2}, {position0}, {r0}");
        w.Op($"setp.le.s32 {unmasked}, {tmp}, {tmp2}");
        w.Op($"@{unmasked} bra SOFTMAX");
        w.Op($"shl.b32 {tmp}, {quad}, 1");
        w.Op($"add.s32 {tmp}, {tmp}, {kt}");
        w.Op($"sub.s32 {limitA}, {positionA}, {tmp}");
        w.Op($"sub.s32 {limitB}, {positionB}, {tmp}");
        for (int n = 0; n < keyFragments; n++)
        {
            for (int e = 0; e < 4; e++)
            {
                w.Op($"setp.ge.s32 {keep}, {(e < 2 ? limitA : limitB)}, {8 * n + e % 2}");
                w.Op($"selp.f32 {score[4 * n + e]}, {score[4 * n + e]}, {NegativeInfinity}, {keep}");
            }
        }
        w.Label("SOFTMAX");
        w.Comment("online softmax in base 2 (q carries scale*log2 e): running max over the row's 4 lanes, P = 2^(S - max)");
        foreach (var (top, first) in new[] { (topA, 0), (topB, 2) })
        {
            w.Op($"max.f32 {top}, {score[first]}, {score[first + 1]}");
            for (int n = 1; n < keyFragments; n++)
            {
                w.Op($"max.f32 {top}, {top}, {score[4 * n + first]}");
                w.Op($"max.f32 {top}, {top}, {score[4 * n + first + 1]}");
            }
            w.Butterfly("max", top, f, 1, 2);
        }
        foreach (var (top, max, rescale, sum, first) in new[] { (topA, maxA, rescaleA, sumA, 0), (topB, maxB, rescaleB, sumB, 2) })
        {
            w.Op($"max.f32 {top}, {top}, {max}"); // finite: key 0 is in every row's first tile
            w.Op($"sub.f32 {rescale}, {max}, {top}");
            w.Op($"ex2.approx.ftz.f32 {rescale}, {rescale}"); // 0 on the first tile (max = -inf)
            w.Op($"mov.f32 {max}, {top}");
            w.Op($"mul.f32 {sum}, {sum}, {rescale}");
            for (int n = 0; n < keyFragments; n++)
            {
                for (int e = first; e < first + 2; e++)
                {
                    w.Op($"sub.f32 {score[4 * n + e]}, {score[4 * n + e]}, {top}");
                    w.Op($"ex2.approx.ftz.f32 {score[4 * n + e]}, {score[4 * n + e]}");
                    w.Op($"add.f32 {sum}, {sum}, {score[4 * n + e]}");
                }
            }
            for (int n = 0; n < outFragments; n++)
            {
                w.Op($"mul.f32 {o[4 * n + first]}, {o[4 * n + first]}, {rescale}");
                w.Op($"mul.f32 {o[4 * n + first + 1]}, {o[4 * n + first + 1]}, {rescale}");
            }
        }
        w.Comment("P as A fragments: k-step j takes key fragments 2j (registers 0, 1) and 2j + 1 (registers 2, 3)");
        for (int j = 0; j < keySteps; j++)
        {
            for (int r = 0; r < 4; r++)
            {
                int n = 2 * j + r / 2, e = 2 * (r % 2);
                w.Op($"cvt.rn.bf16x2.f32 {pa[4 * j + r]}, {score[4 * n + e + 1]}, {score[4 * n + e]}");
            }
        }
        w.Comment("O += P*V");
        for (int j = 0; j < keySteps; j++)
        {
            for (int dp = 0; dp < outFragments / 2; dp++)
            {
                w.Op($"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {{{b[0]}, {b[1]}, {b[2]}, {b[3]}}}, [{vAddress[dp]}+{j * 16 * rowBytes}]");
                for (int half2 = 0; half2 < 2; half2++)
                {
                    int n = 2 * dp + half2;
                    string acc = string.Join(", ", o.AsSpan(4 * n, 4).ToArray());
                    w.Op($"mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {{{acc}}}, {{{pa[4 * j]}, {pa[4 * j + 1]}, {pa[4 * j + 2]}, {pa[4 * j + 3]}}}, {{{b[2 * half2]}, {b[2 * half2 + 1]}}}, {{{acc}}}");
                }
            }
        }
        w.Op($"add.s32 {kt}, {kt}, {Keys}");
        w.Op($"setp.lt.s32 {more}, {kt}, {end}");
        w.Op($"@{more} bra KEY_TILE");

        w.Comment("out = O / (the sum over the row's 4 lanes); rows past the prompt are not stored");
        string stored = w.Reg(".pred", "stored"), outRow = w.Reg(".b64", "out_row");
        foreach (var (sum, row, first) in new[] { (sumA, rowA, 0), (sumB, rowB, 2) })
        {
            w.Butterfly("add", sum, f, 1, 2);
            w.Op($"rcp.rn.f32 {sum}, {sum}");
            w.Op($"setp.lt.s32 {stored}, {row}, {rows}");
            LanePointer(outRow, row, output);
            for (int n = 0; n < outFragments; n++)
            {
                w.Op($"mul.f32 {pair[0]}, {o[4 * n + first]}, {sum}");
                w.Op($"mul.f32 {pair[1]}, {o[4 * n + first + 1]}, {sum}");
                w.Op($"@{stored} st.global.v2.f32 [{outRow}+{32 * n}], {{{pair[0]}, {pair[1]}}}");
            }
        }
        w.Op("ret");
        return w.Entry(Entry(d, warps, bf16Cache),
            [".param .u64 p_q", ".param .u64 p_k", ".param .u64 p_v", ".param .u64 p_out", ".param .u32 p_rows", ".param .u32 p_p0",
             ".param .u32 p_heads", ".param .u32 p_group", ".param .u32 p_kv_columns", ".param .f32 p_scale"],
            $".maxntid {threads}, 1, 1");
    }
}

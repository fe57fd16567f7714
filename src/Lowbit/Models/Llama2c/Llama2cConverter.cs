using Lowbit.Models.HuggingFace;
using Lowbit.Models.IO;
using Lowbit.Models.Safetensors;
using Lowbit.Tensors;

namespace Lowbit.Models.Llama2c;

/// <summary>
/// Converts a llama2.c checkpoint into a Hugging Face LlamaForCausalLM directory (config.json and an F32
/// model.safetensors), one tensor in memory at a time. The directory is built as <c>outDir.tmp-&lt;random&gt;</c>
/// and renamed onto outDir only when complete.
/// </summary>
public static class Llama2cConverter
{
    /// <summary>Writes the converted model to <paramref name="outDir"/>. An existing non-empty outDir is
    /// refused unless <paramref name="overwrite"/>. <paramref name="addFiles"/> receives the temporary
    /// directory before the rename, so a caller can add files (tokenizer.model) that appear atomically with the rest.
    /// <paramref name="dtype"/> (F32, BF16 or F16) is the dtype of every tensor written; narrowing rounds to nearest even.</summary>
    public static void WriteHuggingFace(Llama2cCheckpoint ckpt, string outDir, bool overwrite = false,
        Action<string>? addFiles = null, DType dtype = DType.F32)
    {
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
            throw new NotSupportedException($"A converted checkpoint is F32, BF16 or F16; got {dtype}.");
        AtomicPath.WriteDirectory(outDir, overwrite, temp =>
        {
            ModelConfigWriter.Write(ToModelConfig(ckpt.Config) with { TorchDType = dtype }, Path.Combine(temp, ModelConfigReader.ConfigFileName));
            WriteSafetensors(ckpt, Path.Combine(temp, CheckpointTensors.SingleFileName), dtype);
            addFiles?.Invoke(temp);
        });
    }

    /// <summary>The Hugging Face config of a llama2.c model: its tokenizer has bos 1 and eos 2, and
    /// run.c's RMSNorm epsilon is 1e-5.</summary>
    public static ModelConfig ToModelConfig(Llama2cConfig c) => new()
    {
        Architecture = "LlamaForCausalLM",
        HiddenSize = c.Dim,
        IntermediateSize = c.HiddenDim,
        NumLayers = c.NumLayers,
        NumHeads = c.NumHeads,
        NumKvHeads = c.NumKvHeads,
        HeadDim = c.HeadSize,
        VocabSize = c.VocabSize,
        MaxPositionEmbeddings = c.SeqLen,
        RmsNormEps = 1e-5f,
        RopeTheta = 10000f,
        TieWordEmbeddings = c.SharedClassifier,
        TorchDType = DType.F32,
        BosTokenId = 1,
        EosTokenIds = [2],
    };

    /// <summary>
    /// Reorders the rows of a q or k projection from llama2.c's RoPE convention, which rotates interleaved
    /// pairs (x[2i], x[2i+1]) of each head, to Hugging Face's rotate-half, which pairs (x[i], x[i + D/2]):
    /// within head h, HF row h·D + r takes row h·D + 2r and HF row h·D + D/2 + r takes row h·D + 2r + 1.
    /// This is the <c>permute</c> of transformers' convert_llama_weights_to_hf.py. source and destination are
    /// [heads·D, columns].
    /// </summary>
    public static void PermuteRotaryRows(ReadOnlySpan<float> source, int heads, int headDim, int columns, Span<float> destination)
    {
        if (headDim % 2 != 0 || source.Length != heads * headDim * columns || destination.Length != source.Length)
            throw new ArgumentException($"Expected [{heads}·{headDim}, {columns}] with an even head size; got {source.Length} and {destination.Length} elements.");
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
        {
            for (int r = 0; r < half; r++)
            {
                for (int c = 0; c < 2; c++)
                {
                    int from = h * headDim + 2 * r + c, to = h * headDim + c * half + r;
                    source.Slice(from * columns, columns).CopyTo(destination.Slice(to * columns, columns));
                }
            }
        }
    }

    /// <summary>One output tensor: where it comes from, and for q and k the head count to permute by.</summary>
    private readonly record struct Source(string Name, Llama2cWeight Weight, int Layer = -1, int RotaryHeads = 0);

    private static List<Source> Plan(Llama2cConfig c)
    {
        var plan = new List<Source> { new("model.embed_tokens.weight", Llama2cWeight.TokenEmbedding) };
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            plan.Add(new(p + "input_layernorm.weight", Llama2cWeight.RmsAtt, i));
            plan.Add(new(p + "self_attn.q_proj.weight", Llama2cWeight.Wq, i, c.NumHeads));
            plan.Add(new(p + "self_attn.k_proj.weight", Llama2cWeight.Wk, i, c.NumKvHeads));
            plan.Add(new(p + "self_attn.v_proj.weight", Llama2cWeight.Wv, i));
            plan.Add(new(p + "self_attn.o_proj.weight", Llama2cWeight.Wo, i));
            plan.Add(new(p + "post_attention_layernorm.weight", Llama2cWeight.RmsFfn, i));
            plan.Add(new(p + "mlp.gate_proj.weight", Llama2cWeight.W1, i));
            plan.Add(new(p + "mlp.down_proj.weight", Llama2cWeight.W2, i));
            plan.Add(new(p + "mlp.up_proj.weight", Llama2cWeight.W3, i));
        }
        plan.Add(new("model.norm.weight", Llama2cWeight.RmsFinal));
        if (!c.SharedClassifier)
            plan.Add(new("lm_head.weight", Llama2cWeight.Wcls));
        return plan;
    }

    private static void WriteSafetensors(Llama2cCheckpoint ckpt, string path, DType dtype)
    {
        var plan = Plan(ckpt.Config);
        var shapes = plan.Select(s => ckpt.LayerShape(s.Weight)).ToList();
        long largest = shapes.Max(shape => shape.Aggregate(1L, (a, d) => a * d));
        using var writer = new SafetensorsWriter(path,
            [.. plan.Select((s, i) => new SafetensorsEntry(s.Name, dtype, shapes[i]))],
            new Dictionary<string, string> { ["format"] = "pt" });
        // Scratch for one tensor at a time: the q/k row permutation (f32) and the narrowed copy.
        using var permuted = Tensor.Allocate(DType.F32, checked((int)largest));
        using var narrowed = Tensor.Allocate(DType.BF16, checked((int)largest));
        foreach (var s in plan)
        {
            var tensor = s.Layer < 0 ? ckpt.Get(s.Weight) : ckpt.Get(s.Weight, s.Layer);
            ReadOnlySpan<float> values = tensor.AsSpan<float>();
            if (s.RotaryHeads != 0)
            {
                var destination = permuted.AsSpan<float>()[..values.Length];
                PermuteRotaryRows(values, s.RotaryHeads, ckpt.Config.HeadSize, tensor.Columns, destination);
                values = destination;
            }
            if (dtype == DType.F32)
            {
                writer.WriteTensor(s.Name, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
                continue;
            }
            var narrow = narrowed.AsSpan<ushort>()[..values.Length];
            DTypeConversion.FromSingle(values, dtype, narrow);
            writer.WriteTensor(s.Name, System.Runtime.InteropServices.MemoryMarshal.AsBytes(narrow));
        }
        writer.Commit();
    }
}

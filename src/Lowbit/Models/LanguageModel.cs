using Lowbit.Backends;
using Lowbit.Backends.Cpu;
using Lowbit.Models.HuggingFace;
using Lowbit.Models.IO;
using Lowbit.Models.Tokenization;
using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Models;

/// <summary>What <see cref="LanguageModel.Load"/> may be told; the defaults suit a local CPU run.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>CPU threads; null uses every core.</summary>
    public int? Threads { get; init; }

    /// <summary>Longest sequence (prompt + generated) the KV cache holds; null takes the config's
    /// max_position_embeddings capped at <see cref="DefaultMaxSequenceLength"/>.</summary>
    public int? MaxSequenceLength { get; init; }

    public const int DefaultMaxSequenceLength = 4096;

    /// <summary>Quantize the linear layers at load time (<see cref="Quantizer.Quantize"/> with its default
    /// filter); null keeps the checkpoint's weights.</summary>
    public IQuantConfig? Quantization { get; init; }

    /// <summary>Which linear layers <see cref="Quantization"/> applies to, (name, weight) → bool, as torchao's
    /// filter_fn; null: <see cref="Quantizer.Quantize"/>'s default, every linear layer but the output head.</summary>
    public Func<string, IWeight, bool>? QuantizationFilter { get; init; }

    /// <summary>The device to run on, as a backend (e.g. Lowbit.Cuda's <c>CudaBackend.Open()</c>; this library
    /// cannot name it, since Lowbit.Cuda builds on it); the model takes ownership and disposes it, also when
    /// loading fails. Null runs on the CPU with <see cref="Threads"/>.</summary>
    public IBackend? Device { get; init; }

    /// <summary>How the checkpoint's bytes are held: mapped, or copied into huge pages; Auto takes huge pages for
    /// a CPU run of the checkpoint's own weights on Linux.</summary>
    public WeightMemory WeightMemory { get; init; }

    /// <summary>The KV cache's element type: F32 or BF16, which halves the cache and the bytes decode attention reads at
    /// long contexts (keys and values rounded to bf16 as they are stored, as gpt-fast keeps them); null takes the
    /// backend's <see cref="IBackend.PreferredKvCacheType"/> (F32 on the CPU, BF16 on a CUDA GPU).</summary>
    public DType? KvCacheType { get; init; }
}

/// <summary>
/// A loaded model directory: config, memory-mapped weights, tokenizer and the transformer on a backend.
/// The one object an application holds; <see cref="Generation.Generator"/> runs it.
/// </summary>
public sealed class LanguageModel : IDisposable
{
    private readonly CheckpointTensors _checkpoint;

    private LanguageModel(string directory, ModelConfig config, CheckpointTensors checkpoint, ModelWeights weights,
        TextTokenizer tokenizer, IBackend backend, int maxSequenceLength, DType kvCacheType)
    {
        Directory = directory;
        Config = config;
        _checkpoint = checkpoint;
        Weights = weights;
        Tokenizer = tokenizer;
        Backend = backend;
        Transformer = new Transformer(config, weights, backend, maxSequenceLength, kvCacheType);
    }

    public string Directory { get; }
    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    public TextTokenizer Tokenizer { get; }
    public IBackend Backend { get; }
    public Transformer Transformer { get; }

    /// <summary>What load-time quantization did, or null when none was asked for.</summary>
    public QuantizationReport? QuantizationReport { get; private init; }

    /// <summary>Loads a Hugging Face model directory (config.json, safetensors, tokenizer).</summary>
    public static LanguageModel Load(string directory, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Model directory {Path.GetFullPath(directory)} does not exist.");
        var config = ModelConfigReader.Load(directory);
        var tokenizer = TextTokenizer.Load(directory);
        bool hugePages = options.WeightMemory == WeightMemory.HugePages
            || (options.WeightMemory == WeightMemory.Auto && options.Device is null && options.Quantization is null && OperatingSystem.IsLinux());
        var checkpoint = new CheckpointTensors(directory, hugePages);
        try
        {
            var weights = ModelLoader.LoadWeights(checkpoint, config);
            var report = options.Quantization is null ? null : Quantizer.Quantize(weights, options.Quantization, options.QuantizationFilter);
            int maxSeq = options.MaxSequenceLength
                ?? Math.Min(config.MaxPositionEmbeddings, ModelLoadOptions.DefaultMaxSequenceLength);
            var backend = options.Device ?? new CpuBackend(options.Threads ?? Environment.ProcessorCount);
            try
            {
                backend.PrepareWeights(weights);
            }
            catch
            {
                backend.Dispose();
                throw;
            }
            return new LanguageModel(Path.GetFullPath(directory), config, checkpoint, weights, tokenizer, backend, maxSeq, options.KvCacheType ?? backend.PreferredKvCacheType)
            {
                QuantizationReport = report,
            };
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>Parameters: every element of every weight tensor (a tied head counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long count = Weights.Embedding.ElementCount + Weights.FinalNorm.ElementCount;
            foreach (var layer in Weights.Layers)
            {
                count += layer.AttentionNorm.ElementCount + layer.FeedForwardNorm.ElementCount;
                count += (layer.QueryBias?.ElementCount ?? 0) + (layer.KeyBias?.ElementCount ?? 0) + (layer.ValueBias?.ElementCount ?? 0);
                foreach (var (_, w) in layer.Linears())
                    count += (long)w.OutFeatures * w.InFeatures;
            }
            if (!Config.TieWordEmbeddings || _checkpoint.Contains("lm_head.weight"))
                count += (long)Weights.Classifier.OutFeatures * Weights.Classifier.InFeatures;
            return count;
        }
    }

    public void Dispose()
    {
        Transformer.Dispose();
        Weights.Dispose();
        Backend.Dispose();
        _checkpoint.Dispose();
    }
}

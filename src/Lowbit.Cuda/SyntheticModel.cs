using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// Random-weight models of well-known shapes built directly in GPU memory, for benchmarks on a machine that
/// cannot download checkpoints (gpt-fast's anchors were measured the same way: random weights, batch 1).
/// Weights are random of magnitude ~2^−7 (<see cref="CudaBackend.RandomTensor"/>), norms 1: values do not change
/// the speed of any kernel here.
/// </summary>
public static class SyntheticModel
{
    /// <summary>Names <see cref="Shape"/> knows.</summary>
    public static IReadOnlyList<string> Shapes { get; } = ["llama3-8b", "llama2-7b", "llama3-1b"];

    /// <summary>The config of a named shape (Hugging Face's config.json values).</summary>
    public static ModelConfig Shape(string name) => name switch
    {
        "llama3-8b" => Llama(dim: 4096, hidden: 14336, layers: 32, heads: 32, kvHeads: 8, vocab: 128256, theta: 500000f),
        "llama2-7b" => Llama(dim: 4096, hidden: 11008, layers: 32, heads: 32, kvHeads: 32, vocab: 32000, theta: 10000f),
        "llama3-1b" => Llama(dim: 2048, hidden: 8192, layers: 16, heads: 32, kvHeads: 8, vocab: 128256, theta: 500000f),
        _ => throw new ArgumentException($"Unknown shape \"{name}\"; known: {string.Join(", ", Shapes)}."),
    };

    private static ModelConfig Llama(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, float theta) => new()
    {
        Architecture = "LlamaForCausalLM",
        HiddenSize = dim,
        IntermediateSize = hidden,
        NumLayers = layers,
        NumHeads = heads,
        NumKvHeads = kvHeads,
        HeadDim = dim / heads,
        VocabSize = vocab,
        MaxPositionEmbeddings = 8192,
        RopeTheta = theta,
        TorchDType = DType.BF16,
    };

    /// <summary>BF16 weights of <paramref name="config"/> in <paramref name="backend"/>'s memory; linear layers
    /// made by <paramref name="linear"/> (n, k, seed) when given (a quantized format's random weights), else
    /// dense BF16. Dispose the weights before the backend.</summary>
    public static ModelWeights Build(CudaBackend backend, ModelConfig config, Func<int, int, uint, IWeight>? linear = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(config);
        uint seed = 1;
        linear ??= (n, k, s) => new DenseWeight(backend.RandomTensor(DType.BF16, n, k, s));
        Tensor Norm() => backend.ConstantTensor(1f, 1, config.HiddenSize);
        IWeight Linear(int n, int k) => linear(n, k, seed++);
        var layers = new LayerWeights[config.NumLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = new LayerWeights
            {
                AttentionNorm = Norm(),
                Query = Linear(config.QDim, config.HiddenSize),
                Key = Linear(config.KvDim, config.HiddenSize),
                Value = Linear(config.KvDim, config.HiddenSize),
                Output = Linear(config.HiddenSize, config.QDim),
                FeedForwardNorm = Norm(),
                Gate = Linear(config.IntermediateSize, config.HiddenSize),
                Up = Linear(config.IntermediateSize, config.HiddenSize),
                Down = Linear(config.HiddenSize, config.IntermediateSize),
            };
        }
        return new ModelWeights
        {
            Embedding = backend.RandomTensor(DType.BF16, config.VocabSize, config.HiddenSize, seed++),
            Layers = layers,
            FinalNorm = Norm(),
            Classifier = Linear(config.VocabSize, config.HiddenSize),
        };
    }
}

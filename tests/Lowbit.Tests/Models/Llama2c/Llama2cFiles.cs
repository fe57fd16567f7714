using System.Buffers.Binary;
using Lowbit.Models.Llama2c;

namespace Lowbit.Tests.Models.Llama2c;

/// <summary>The bundled stories260K checkpoint, and small synthetic llama2.c files built in tests.</summary>
public static class Llama2cFiles
{
    public static string Stories260K => Path.Combine(AppContext.BaseDirectory, "fixtures", "llama2c", "stories260K.bin");

    /// <summary>The number of F32 values after the header, in the order the file stores them.</summary>
    public static long FloatCount(Llama2cConfig c)
    {
        long d = c.Dim, l = c.NumLayers, kv = c.KvDim, h = c.HiddenDim, v = c.VocabSize;
        return v * d + l * d + l * d * d + 2 * l * kv * d + l * d * d + l * d + 3 * l * h * d + d
            + c.SeqLen * c.HeadSize + (c.SharedClassifier ? 0 : v * d);
    }

    /// <summary>Writes a checkpoint whose i-th float is <paramref name="value"/>(i); the header is written
    /// as given, so vocab_size is negated when the classifier is separate.</summary>
    public static string Write(string path, Llama2cConfig c, Func<long, float> value)
    {
        int[] header = [c.Dim, c.HiddenDim, c.NumLayers, c.NumHeads, c.NumKvHeads,
            c.SharedClassifier ? c.VocabSize : -c.VocabSize, c.SeqLen];
        long floats = FloatCount(c);
        var bytes = new byte[Llama2cConfig.HeaderBytes + 4 * floats];
        for (int i = 0; i < header.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), header[i]);
        for (long i = 0; i < floats; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(Llama2cConfig.HeaderBytes + 4 * i)), value(i));
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Seven raw header ints followed by <paramref name="floats"/> zero floats.</summary>
    public static string WriteRaw(string path, int[] header, long floats)
    {
        var bytes = new byte[4 * header.Length + 4 * floats];
        for (int i = 0; i < header.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), header[i]);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}

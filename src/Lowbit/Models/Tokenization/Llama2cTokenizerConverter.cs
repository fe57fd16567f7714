using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Lowbit.Models.Tokenization;

/// <summary>
/// Turns a llama2.c tokenizer (run.c's <c>tokenizer.bin</c>, e.g. tinyllamas' <c>tok512.bin</c>) back into the
/// SentencePiece model it was exported from, so one SentencePiece tokenizer serves both kinds of checkpoint.
/// </summary>
/// <remarks>
/// The .bin layout (little-endian): int32 max_token_length, then per piece float32 score, int32 byte length and the
/// piece's UTF-8 bytes; the piece count is not stored. Comparing llama2.c's <c>tokenizer.bin</c> with the
/// <c>tokenizer.model</c> it came from shows what llama2.c's export (tokenizer.py) changed: every "▁" became " ",
/// &lt;s&gt; and &lt;/s&gt; became "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n"; scores and order are kept. Piece types are
/// not stored, so they come from the fixed layout of llama2.c's vocabularies: 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;,
/// 3..258 the byte pieces &lt;0x00&gt;..&lt;0xFF&gt;, the rest normal pieces. The normalizer is the one Llama 2's model
/// has: "identity", a dummy-prefix space, no whitespace collapsing — which is also what run.c's encoder does.
/// </remarks>
public static class Llama2cTokenizerConverter
{
    private const int FirstBytePiece = 3;
    private const int FirstNormalPiece = FirstBytePiece + 256;

    /// <summary>Reads <paramref name="binPath"/>, which must hold exactly <paramref name="vocabSize"/> pieces, and
    /// returns a serialized SentencePiece ModelProto (BPE, byte fallback) for <c>LlamaTokenizer.Create</c>.</summary>
    public static byte[] ToSentencePieceModel(string binPath, int vocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, FirstNormalPiece);
        byte[] data = File.ReadAllBytes(binPath);
        var pieces = new List<SentencePiece>(vocabSize);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int position = 0;
        int maxTokenLength = BinaryPrimitives.ReadInt32LittleEndian(Next4(data, ref position, binPath, "max_token_length"));
        while (pieces.Count < vocabSize)
        {
            int id = pieces.Count;
            if (position == data.Length)
                throw new InvalidDataException($"{binPath}: ends after {id} pieces, expected vocab size {vocabSize}");
            float score = BinaryPrimitives.ReadSingleLittleEndian(Next4(data, ref position, binPath, $"piece {id} score"));
            int length = BinaryPrimitives.ReadInt32LittleEndian(Next4(data, ref position, binPath, $"piece {id} length"));
            if (length <= 0 || length > maxTokenLength || length > data.Length - position)
                throw new InvalidDataException(
                    $"{binPath}: piece {id} has length {length}; expected 1..{maxTokenLength} (max_token_length) and at most {data.Length - position} bytes left");
            SentencePiece piece = ToSentencePiece(data.AsSpan(position, length), score, id, binPath);
            position += length;
            if (!seen.Add(piece.Piece))
                throw new InvalidDataException($"{binPath}: piece {id} \"{piece.Piece}\" appears twice");
            pieces.Add(piece);
        }
        if (position != data.Length)
            throw new InvalidDataException(
                $"{binPath}: {data.Length - position} bytes follow piece {vocabSize - 1}; the file holds more than vocab size {vocabSize} pieces");

        var model = new SentencePieceModel
        {
            Pieces = pieces,
            ModelType = SentencePieceModel.ModelTypeBpe,
            ByteFallback = true,
            UnkId = 0,
            BosId = 1,
            EosId = 2,
            PadId = -1,
            NormalizerName = "identity",
            AddDummyPrefix = true,
            RemoveExtraWhitespaces = false,
            EscapeWhitespaces = true,
        };
        return model.Serialize();
    }

    private static SentencePiece ToSentencePiece(ReadOnlySpan<byte> bytes, float score, int id, string binPath)
    {
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{binPath}: piece {id} is not valid UTF-8 ({e.Message})", e);
        }

        (string expected, SentencePieceType type) = id switch
        {
            0 => ("<unk>", SentencePieceType.Unknown),
            1 => ("<s>", SentencePieceType.Control),
            2 => ("</s>", SentencePieceType.Control),
            < FirstNormalPiece => (string.Create(CultureInfo.InvariantCulture, $"<0x{id - FirstBytePiece:X2}>"), SentencePieceType.Byte),
            _ => ("", SentencePieceType.Normal),
        };
        if (type == SentencePieceType.Normal)
            return new SentencePiece(text.Replace(' ', '\u2581'), score, type);

        // llama2.c's export wraps <s> and </s> in newlines so run.c prints them on their own line.
        if (text.Trim('\n') != expected)
            throw new InvalidDataException(
                $"{binPath}: piece {id} is \"{text}\", expected \"{expected}\" (llama2.c layout: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>)");
        return new SentencePiece(expected, score, type);
    }

    /// <summary>The next 4 little-endian bytes (an int32 or a float32) at <paramref name="position"/>.</summary>
    private static ReadOnlySpan<byte> Next4(byte[] data, ref int position, string binPath, string what)
    {
        if (data.Length - position < 4)
            throw new InvalidDataException($"{binPath}: truncated at byte {position} reading {what}");
        position += 4;
        return data.AsSpan(position - 4, 4);
    }
}
